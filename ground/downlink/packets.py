"""Products to a CCSDS Space Packet stream (133.0-B-2), one APID per product type, and back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from onboard.contracts.ccsds import Packetizer, reassemble
from onboard.errors import ProductError
from onboard.files import ensure_writable_dir, write_verified
from onboard.contracts.product import decode_product, read_product


def packetize_products(products: list[Path], max_data: int) -> list[bytes]:
    """The packets of `products`, each read as a product first so nothing else goes down."""
    packetizer, packets = Packetizer(max_data), []
    for path in products:
        read_product(path)
        packets += packetizer.packetize(path.read_bytes())
    return packets


@dataclass(frozen=True)
class Rebuilt:
    written: list[tuple[Path, int]]  # each product's path and size
    problems: list[str]  # products missing or incomplete in the stream


def rebuild_products(stream: Path, out_dir: Path) -> Rebuilt:
    """Rebuild the products in the packet stream at `stream` into `out_dir`."""
    try:
        data = stream.read_bytes()
    except OSError as exc:
        raise ProductError(f"packet stream {stream} cannot be read: {exc.strerror}") from None
    ensure_writable_dir(out_dir)
    result = reassemble(data)
    written = []
    for product in result.products:
        p = decode_product(product, source=f"a product in {stream}")
        written.append((write_verified(out_dir / p.file_name, product), len(product)))
    return Rebuilt(written, list(result.problems))
