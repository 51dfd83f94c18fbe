"""The ground's work on files, shared by the commands: each step on one patch set (`steps`), a
compression study over architectures (`study`), and the demo end to end (`demo`)."""
