"""WebSocket compression (permessage-deflate, RFC 7692) as WS_COMPRESSION says, not as hypercorn does.

hypercorn (0.18) accepts permessage-deflate whenever a client offers it, and every browser
does: each socket then holds zlib state with a 32 KiB window and a memLevel of 8 for its
whole life, about 100 KiB per idle socket and a quarter of the api's busy time at 5,000
events/s (docs/benchmarks.md). Our frames are small JSON, which gains little from it.

`install(policy)` replaces the extension hypercorn builds for each handshake:

- `WS_COMPRESSION=false` (the default): an extension that declines every offer, so the
  handshake answers without `Sec-WebSocket-Extensions` and the socket never compresses.
- `WS_COMPRESSION=true`: permessage-deflate with a bounded window. The client's window is
  bounded only when the client offered `client_max_window_bits` (browsers do), as RFC 7692
  requires; our own compressor uses the bounded window and a matching memLevel without
  announcing it (any window up to the negotiated one decodes). Messages shorter than
  `WS_COMPRESSION_MIN_BYTES` are sent uncompressed (RFC 7692 §6: RSV1 clear), and a socket
  creates its compressor at its first large message, not at the handshake.

The replacement is the name `PerMessageDeflate` in hypercorn's ws_stream module, the one
place its handshake builds extensions; `install` is idempotent and the last call wins.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

from hypercorn.protocol import ws_stream
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import FrameDecoder, FrameProtocol, Opcode, RsvBits

_ORIGINAL = getattr(ws_stream, "PerMessageDeflate")  # noqa: B009


@dataclass(frozen=True, slots=True)
class CompressionPolicy:
    enabled: bool = False
    window_bits: int = 11  # 2 KiB window: 9..15 (RFC 7692's range)
    min_bytes: int = 512  # shorter messages go uncompressed


class DeclinedDeflate(Extension):
    """permessage-deflate, always declined: wsproto leaves an unaccepted extension inert."""

    name = PerMessageDeflate.name

    def accept(self, offer: str) -> bool | str | None:
        return None

    def offer(self) -> bool | str:
        return False


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate with a bounded window and memLevel, and small messages left as they are."""

    def __init__(self, policy: CompressionPolicy) -> None:
        super().__init__(client_max_window_bits=policy.window_bits)
        self._policy = policy

    def accept(self, offer: str) -> bool | str | None:
        bounded = _bounded_offer(offer, self._policy.window_bits)
        return None if bounded is None else super().accept(bounded)

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        whole_message = opcode in (Opcode.TEXT, Opcode.BINARY) and fin
        if whole_message and len(data) < self._policy.min_bytes:
            return (rsv, data)  # RSV1 clear: this message is not compressed
        if (
            self._compressor is None
            and opcode is not Opcode.CONTINUATION
            and self._compressible_opcode(opcode)
        ):
            bits = min(self.server_max_window_bits, self._policy.window_bits)
            # zlib's own rule of thumb: memLevel = windowBits - 7 (8 for the default 15).
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, max(1, bits - 7)
            )
        return super().frame_outbound(proto, opcode, rsv, data, fin)


def _bounded_offer(offer: str, bits: int) -> str | None:
    """`offer` with its window sizes lowered to `bits` (RFC 7692 §7.1.2: an answer may name a
    smaller window than offered); None when a parameter is malformed: wsproto would raise on
    it, and declining compression is the answer to a broken offer."""
    name, *params = (p.strip() for p in offer.split(";"))
    bounded = [name]
    for param in params:
        key, eq, value = (s.strip() for s in param.partition("="))
        if key in ("client_max_window_bits", "server_max_window_bits") and eq:
            if not (value.isascii() and value.isdigit() and len(value) <= 2 and 9 <= int(value) <= 15):
                return None
            param = f"{key}={min(int(value), bits)}"
        bounded.append(param)
    return "; ".join(bounded)


def install(policy: CompressionPolicy) -> None:
    """Make every later handshake of this process follow `policy`."""
    extension: Callable[[], Extension] = (
        (lambda: BoundedDeflate(policy)) if policy.enabled else DeclinedDeflate
    )
    setattr(ws_stream, "PerMessageDeflate", extension)  # noqa: B010 (not a public attribute)


def uninstall() -> None:
    """hypercorn's own behaviour again (tests)."""
    setattr(ws_stream, "PerMessageDeflate", _ORIGINAL)  # noqa: B010
