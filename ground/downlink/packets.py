"""Products to a CCSDS Space Packet stream (133.0-B-2), one APID per product type, and back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from onboard.contracts.ccsds import Packetizer, reassemble
from onboard.errors import ProductError
from onboard.files import ensure_writable_dir, write_verified
from onboard.contracts.product import MAX_BYTES, decode_product, name_from_head
from onboard.schema import read_bounded


def packetize_products(products: list[Path], max_data: int) -> list[bytes]:
    """The packets of `products`, each read as a product first so nothing else goes down."""
    packetizer, packets = Packetizer(max_data), []
    for path in products:
        data = read_bounded(path, MAX_BYTES, error=ProductError, what="product")
        decode_product(data, source=f"product {path}")
        packets += packetizer.packetize(data)
    return packets


@dataclass(frozen=True)
class Rebuilt:
    written: list[tuple[Path, int]]  # each product's path and size
    problems: list[str]  # products missing or incomplete in the stream


def rebuild_products(stream: Path, out_dir: Path) -> Rebuilt:
    """Rebuild the products in the packet stream at `stream` into `out_dir`: each that arrived
    whole and decodes, under its file name; the others, and what broke the stream, as problems.
    A stream without a packet is a ProductError."""
    try:
        data = stream.read_bytes()
    except OSError as exc:
        raise ProductError(f"packet stream {stream} cannot be read: {exc.strerror}") from None
    if not data:
        raise ProductError(f"packet stream {stream} is empty: no packets")
    ensure_writable_dir(out_dir)
    result = reassemble(data, name=name_from_head)
    written, problems = [], list(result.problems)
    for i, product in enumerate(result.products, 1):
        try:
            p = decode_product(product, source=f"product {i} of {len(result.products)} in {stream}")
        except ProductError as exc:
            problems.append(str(exc))
            continue
        written.append((write_verified(out_dir / p.file_name, product), len(product)))
    return Rebuilt(written, problems)
