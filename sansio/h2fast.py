"""Where HTTP/2 takes a faster path than stock h2, with stock h2 as the reference.

With 100 streams in flight, these parts of h2 and hpack cost more than the
protocol work itself (profiled against nginx, see bench/README.md):

* **Counting open streams.** ``H2Connection.open_outbound_streams`` walks every
  stream each time it is read (once per request inside ``send_headers``, and
  whenever the pool asks ``can_open_stream``), so a request costs O(streams).
  :class:`CountingH2Connection` keeps the count as streams change state and
  forgets closed streams at exactly the moments h2 would, so h2 behaves the
  same frame for frame.
* **Checking received fields.** h2 validates each header block through a chain
  of seven generators. :func:`received_fields_error` applies the same rules in
  one pass over the block (a regular expression per field decides the common
  case) at the same step of h2's processing (:class:`_CheckingStream`) and
  returns h2's own message, so errors read the same.
* **Decoding HPACK.** hpack's ``Decoder.decode`` makes a method call, a
  memoryview slice, a copy of the rest of the block and two log calls per
  field. :class:`FastHPACKDecoder` decodes the usual representations (an
  index or a length that fits its prefix, all bytes present) inline, on the
  same header table, and hands anything else to hpack's own code for that
  one representation, so errors and edge cases are hpack's by construction.
* **Encoding HPACK.** A client sends the same fields again and again, and once
  they are all in the table their encoding no longer changes it.
  :class:`FastHPACKEncoder` remembers the block of such a field list and
  returns it while the table stays as it was; anything that changes the
  table (a new entry, a size change) forgets every block.
* **Normalising request fields.** ``send_request`` already refuses what h2's
  outbound checks refuse and lowercases names, so only h2's one transformation
  remains: :func:`secure_fields` keeps credentials out of the HPACK dynamic
  table as h2 does.

``HTTP2State(reference=True)`` runs stock h2 with every check on; the
differential tests and the ``http2`` fuzz harness require both to produce the
same events, errors and bytes for the same input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import h2.connection
import h2.exceptions
import h2.stream
import h2.utilities
import hpack.hpack
from hpack.exceptions import HPACKDecodingError, OversizedHeaderListError
from hpack.struct import HeaderTuple, NeverIndexedHeaderTuple

from ._memo import remember

__all__ = [
    "CountingH2Connection",
    "FastHPACKDecoder",
    "FastHPACKEncoder",
    "SizeUpdatingEncoder",
    "received_fields_error",
    "secure_fields",
]


# -- counting open streams -------------------------------------------------------

_OPEN = h2.stream.STREAM_OPEN  # indexed by StreamState: OPEN or half-closed
_CLOSED = h2.stream.StreamState.CLOSED


class _ObservedStreamStateMachine(h2.stream.H2StreamStateMachine):
    """h2's stream state machine, reporting the moves the count depends on.

    ``process_input`` is the only place h2 changes a stream's state.
    """

    connection: CountingH2Connection

    def process_input(self, input_: h2.stream.StreamInputs) -> Any:
        was_open = _OPEN[self.state]
        was_closed = self.state is _CLOSED
        try:
            return super().process_input(input_)
        finally:
            state = self.state
            if _OPEN[state] != was_open:
                self.connection.open_counts[self.stream_id & 1] += (
                    1 if _OPEN[state] else -1
                )
            if state is _CLOSED and not was_closed:
                self.connection.newly_closed.append(self.stream_id)


class CountingH2Connection(h2.connection.H2Connection):
    """An ``H2Connection`` whose open-stream counts cost O(1), not O(streams).

    h2 counts by walking ``streams`` and, on the same walk, moves every closed
    stream to ``_closed_streams`` (a bounded record of how each closed). Which
    streams have been moved decides how a late frame for them is answered, so
    the move happens here at the same calls, for the streams that closed since
    the last one, in the order h2's walk would meet them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_counts = [0, 0]  # even (server-initiated), odd (ours)
        self.newly_closed: list[int] = []
        self.decoder.__class__ = FastHPACKDecoder
        self.encoder.__class__ = FastHPACKEncoder
        self.encoder.blocks = {}  # type: ignore[attr-defined]

    def _begin_new_stream(
        self, stream_id: int, allowed_ids: h2.connection.AllowedStreamIDs
    ) -> h2.stream.H2Stream:
        # Only ours: HTTP2State refuses a server's HEADERS on an even stream
        # before h2 sees it, and push is disabled.
        assert stream_id & 1, stream_id
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        machine = stream.state_machine
        assert machine.state is h2.stream.StreamState.IDLE  # neither open nor closed
        machine.__class__ = _ObservedStreamStateMachine
        machine.connection = self  # type: ignore[attr-defined]
        stream.__class__ = _CheckingStream
        return stream

    def _open_streams(self, remainder: int) -> int:
        closed = self.newly_closed
        if closed:
            # h2's walk meets streams in creation order: ascending ids.
            closed.sort()
            streams = self.streams
            for stream_id in closed:
                self._closed_streams[stream_id] = streams.pop(stream_id).closed_by
            closed.clear()
        return self.open_counts[remainder]


class _CheckingStream(h2.stream.H2Stream):
    """h2's stream, checking received fields with :func:`received_fields_error`.

    At the very step where h2 would run its own checks (they are switched
    off): after the state moves and the content-length bookkeeping, after
    cookie fields are joined, before anything else in the frame.
    """

    def _process_received_headers(
        self,
        headers: Any,
        header_validation_flags: h2.utilities.HeaderValidationFlags,
        header_encoding: Any,
    ) -> Any:
        fields = super()._process_received_headers(
            headers, header_validation_flags, header_encoding
        )
        # A client receives only response heads (1xx included) and trailers:
        # HTTP2State refuses a server's HEADERS on a stream of its own, and
        # push is disabled.
        trailer = header_validation_flags.is_trailer
        assert trailer or header_validation_flags.is_response_header
        message = received_fields_error(fields, trailer=trailer)
        if message is not None:
            raise h2.exceptions.ProtocolError(message)
        return fields


# -- HPACK ------------------------------------------------------------------------


_hpack_module: Any = hpack.hpack  # looked up per block: http2.py replaces it


class FastHPACKDecoder(hpack.hpack.Decoder):
    """hpack's decoder with the common representations decoded inline.

    RFC 7541 §6: a field is indexed (1xxxxxxx), a literal with incremental
    indexing (01xxxxxx), without indexing (0000xxxx) or never indexed
    (0001xxxx); 001xxxxx resizes the table. Inline means: every integer fits
    its prefix and every string is all there. Anything else (and every
    table size update) goes to hpack's method for that representation at
    the same offset, with the same table, so it decodes or fails exactly as
    stock hpack does; an inline step that finds a problem has changed
    nothing yet, and defers the same way. Only raw (bytes) decoding is
    inline: that is what h2 asks for.
    """

    def decode(self, data: bytes, raw: bool = False) -> Any:
        if not raw:
            return super().decode(data, raw)
        if type(data) is not bytes:
            data = bytes(data)
        view = memoryview(data)
        table = self.header_table
        entry = table.get_by_index
        huffman = _hpack_module.decode_huffman  # the memoised one, see http2.py
        limit = self.max_header_list_size
        headers: list[HeaderTuple] = []
        size = 0
        index = 0
        end = len(data)
        while index < end:
            first = data[index]
            header: HeaderTuple | None = None
            if first & 0x80:  # indexed
                if first != 0xFF:
                    header = HeaderTuple(*entry(first & 0x7F))
                    index += 1
                else:
                    header, used = self._decode_indexed(view[index:])
                    index += used
            elif first & 0x40 or not first & 0x20:  # a literal
                if first & 0x40:
                    name_index, full = first & 0x3F, first | 0xC0 == 0xFF
                else:
                    name_index, full = first & 0x0F, first | 0xF0 == 0xFF
                at = index + 1
                name = b""
                if full:
                    at = 0
                elif name_index:
                    name = entry(name_index)[0]
                elif at < end and data[at] | 0x80 != 0xFF:
                    length = data[at] & 0x7F
                    name = data[at + 1 : at + 1 + length]
                    at = at + 1 + length if len(name) == length else 0
                    if at and data[index + 1] & 0x80:
                        name = huffman(name)
                else:
                    at = 0
                if at and at < end and data[at] | 0x80 != 0xFF:
                    length = data[at] & 0x7F
                    value = data[at + 1 : at + 1 + length]
                    if len(value) == length:
                        if data[at] & 0x80:
                            value = huffman(value)
                        index = at + 1 + length
                        if first & 0x40:
                            header = HeaderTuple(name, value)
                            table.add(name, value)
                        elif first & 0x10:
                            header = NeverIndexedHeaderTuple(name, value)
                        else:
                            header = HeaderTuple(name, value)
                if header is None:
                    if first & 0x40:
                        header, used = self._decode_literal_index(view[index:])
                    else:
                        header, used = self._decode_literal_no_index(view[index:])
                    index += used
            else:  # a table size update
                if headers:
                    msg = "Table size update not at the start of the block"
                    raise HPACKDecodingError(msg)
                index += self._update_encoding_context(view[index:])
                continue
            headers.append(header)
            size += 32 + len(header[0]) + len(header[1])  # RFC 7541 §4.1
            if size > limit:
                msg = f"A header list larger than {limit} has been received"
                raise OversizedHeaderListError(msg)
        self._assert_valid_table_size()
        return headers


_STOCK_TABLE_SIZE: Any = hpack.hpack.Encoder.header_table_size


class SizeUpdatingEncoder(hpack.hpack.Encoder):
    """hpack's encoder, minus one lost size update: a fix both engines take.

    h2 sets the table size for every SETTINGS that names it. hpack's
    ``resized`` flag says whether the last setting changed the size, so the
    same new size set twice lowers it again although a change is pending,
    and the update RFC 7541 §4.2 requires at the start of the next block is
    never sent (a strict server answers COMPRESSION_ERROR). Here a pending
    change keeps the flag up.
    """

    def _set_table_size(self, value: int) -> None:
        _STOCK_TABLE_SIZE.fset(self, value)
        if self.table_size_changes:
            self.header_table.resized = True

    header_table_size = _STOCK_TABLE_SIZE.setter(_set_table_size)


class FastHPACKEncoder(SizeUpdatingEncoder):
    """hpack's encoder, remembering blocks whose encoding left the table as it was.

    An encoding depends on the field list, its never-indexed marks, the
    Huffman choice and the table. The table changes only when an encoding
    adds an entry (evicting others) or its size changes; while neither
    happens, the same input gives the same block, so it is kept, keyed by
    all of the input. An encoding that changed the table, or one that
    carries a size update (pending whenever the size changed: see
    SizeUpdatingEncoder), forgets every kept block. At most ``MAX_BLOCKS``
    are kept, and never a block with credentials in it (never-indexed fields).
    """

    MAX_BLOCKS = 64
    blocks: dict[tuple[Any, ...], bytes]

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        if type(headers) is not list:
            self.blocks.clear()
            return bytes(super().encode(headers, huffman))
        table = self.header_table
        blocks = self.blocks
        kinds = tuple([type(field) for field in headers])
        key = (huffman, tuple(headers), kinds)
        if table.resized:
            # This block starts with the size update: not one to repeat.
            blocks.clear()
            return bytes(super().encode(headers, huffman))
        if (block := blocks.get(key)) is not None:
            return block
        entries = table.dynamic_entries
        front = entries[0] if entries else None  # held: its id cannot be reused
        count = len(entries)
        block = bytes(super().encode(headers, huffman))
        if count != len(entries) or (entries[0] if entries else None) is not front:
            blocks.clear()
        elif NeverIndexedHeaderTuple not in kinds:  # credentials are never kept
            remember(blocks, key, block, self.MAX_BLOCKS)
        return block


# -- received fields -------------------------------------------------------------

# RFC 9113 §8.2.1 as h2 applies it: a name has no uppercase, no byte <= 0x20 or
# >= 0x7f, and no ':' but a leading one; a value has no NUL, CR or LF and no
# leading or trailing SP or HTAB.
_GOOD_NAME = re.compile(rb":?[\x21-\x39\x3b-\x40\x5b-\x7e]+")
_GOOD_VALUE = re.compile(rb"(?:[^\x00\n\r \t](?:[^\x00\n\r]*[^\x00\n\r \t])?)?")

# h2's own sets: "pseudo & _REQUEST_ONLY" then lists its result in h2's order.
_CONNECTION_FIELDS = h2.utilities.CONNECTION_HEADERS
_PSEUDO_FIELDS = h2.utilities._ALLOWED_PSEUDO_HEADER_FIELDS
_REQUEST_ONLY = h2.utilities._REQUEST_ONLY_HEADERS


def received_fields_error(
    fields: Sequence[tuple[bytes, bytes]], trailer: bool
) -> str | None:
    """What h2's inbound checks would say of a response's header block, or None.

    ``fields`` is the block as h2 hands it over (cookie fields already joined);
    ``trailer`` says whether it is a trailer block or a (1xx or final) head.
    The rules and their order are h2 4.x ``validate_headers``: per field, the
    character rules, then empty names, TE, connection-specific fields and
    pseudo-header placement; then which pseudo-header fields the block has.
    """
    pseudo: set[bytes] = set()
    regular = False
    for name, value in fields:
        if (
            _GOOD_NAME.fullmatch(name) is None or _GOOD_VALUE.fullmatch(value) is None
        ) and (message := _character_error(name, value)) is not None:
            return message
        if not name:
            return "Received header name with zero length."
        if name == b"te" and value.lower() != b"trailers":
            return f"Invalid value for TE header: {value!r}"
        if name in _CONNECTION_FIELDS:
            return f"Connection-specific header field present: {name!r}."
        if name[0] == 0x3A:  # ':'
            if name in pseudo:
                return f"Received duplicate pseudo-header field {name!r}"
            pseudo.add(name)
            if regular:
                return f"Received pseudo-header field out of sequence: {name!r}"
            if name not in _PSEUDO_FIELDS:
                return f"Received custom pseudo-header field {name!r}"
        else:
            regular = True
    if trailer:
        return f"Received pseudo-header in trailer {pseudo}" if pseudo else None
    if b":status" not in pseudo:
        return f"Header block missing mandatory {b':status'!r} header"
    if request_only := pseudo & _REQUEST_ONLY:
        return f"Encountered request-only headers {request_only}"
    return None


def _character_error(name: bytes, value: bytes) -> str | None:
    # The slow path, byte by byte in h2's order, for h2's exact words. An empty
    # name fails _GOOD_NAME but is a later rule's to report.
    for byte in name:
        if 0x41 <= byte <= 0x5A:
            return f"Received uppercase header name {name!r}."
        if byte <= 0x20 or byte >= 0x7F:
            return f"Illegal character '{chr(byte)}' in header name: {name!r}"
    if name.find(b":", 1) != -1:
        return f"Illegal character ':' in header name: {name!r}"
    if value:
        for byte in value:
            if byte in (0x00, 0x0A, 0x0D):
                return f"Illegal character '{chr(byte)}' in header value: {value!r}"
        if value[0] in (0x20, 0x09) or value[-1] in (0x20, 0x09):
            return f"Received header value surrounded by whitespace {value!r}"
    return None


# -- request fields --------------------------------------------------------------

_SECURE = frozenset({b"authorization", b"proxy-authorization"})


def secure_fields(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Mark credentials never-indexed, in place, as h2's ``_secure_headers`` does.

    HPACK's dynamic table is shared by every request on the connection, so a
    credential indexed there is exposed to compression-ratio attacks (CRIME,
    RFC 7541 §7.1.3): Authorization and Proxy-Authorization always, and
    Cookie values under 20 bytes (guessable), are sent as never-indexed
    literals. ``fields`` are lowercased already.
    """
    for index, (name, value) in enumerate(fields):
        if name in _SECURE or (name == b"cookie" and len(value) < 20):
            fields[index] = NeverIndexedHeaderTuple(name, value)
    return fields
