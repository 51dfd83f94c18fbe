"""The ground end of the serial link: the client and file transfers."""
