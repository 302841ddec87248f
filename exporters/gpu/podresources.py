"""A small client of the kubelet pod-resources API: ``v1.PodResourcesLister/List`` over a unix socket.

The API is gRPC, that is HTTP/2 with a 5-byte frame around a protobuf message. ``h2`` (pure
Python) does the HTTP/2; the request message is empty and the response is decoded here with a
protobuf wire-format reader of a few lines, so the exporter needs neither grpcio nor protobuf.
Only the fields attribution needs are read; every other field is skipped by its wire type::

    message ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
    message PodResources       { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
    message ContainerResources { string name = 1; repeated ContainerDevices devices = 2; }
    message ContainerDevices   { string resource_name = 1; repeated string device_ids = 2; }

Failures raise :class:`CollectionError` with a bounded kind: ``connection``, ``timeout``,
``http_<status>``, ``grpc_<status name>``, ``malformed``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from medobs.core.runtime import CollectionError

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
LIST_PATH = "/v1.PodResourcesLister/List"
#: A response larger than this is refused (a node's pod list is a few kilobytes).
MAX_RESPONSE = 16 * 1024 * 1024

_GRPC_STATUS = (
    "ok", "cancelled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
    "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
    "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
)


@dataclass(frozen=True)
class Allocation:
    """One device the kubelet allocated to a container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_id: str


def list_allocations(path: str, timeout: float) -> list[Allocation]:
    """Every device allocation the kubelet reports, within ``timeout`` seconds."""
    return parse_list_response(call(path, LIST_PATH, b"", timeout))


# -- gRPC over HTTP/2 over a unix socket ---------------------------------------------------------


def call(path: str, method: str, request: bytes, timeout: float) -> bytes:
    """One unary gRPC call; the response message's bytes."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as error:
            raise CollectionError("connection", f"cannot connect to {path}: {error.strerror or error}") from None
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(stream, [
            (":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", method),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "medobs-gpu-exporter"),
        ])
        connection.send_data(stream, _frame(request), end_stream=True)
        headers, body = _exchange(sock, connection, stream, deadline, path)
    return _unframe(headers, body, path)


def _frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _exchange(
    sock: socket.socket, connection: h2.connection.H2Connection, stream: int, deadline: float, path: str
) -> tuple[dict[str, str], bytes]:
    """Send what is queued and read until the stream ends: (headers and trailers, body)."""
    headers: dict[str, str] = {}
    body = bytearray()
    ended = False
    while True:
        try:
            sock.sendall(connection.data_to_send())
            if ended:
                return headers, bytes(body)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(65536)
        except TimeoutError:
            raise CollectionError("timeout", f"no answer from {path} in time") from None
        except OSError as error:
            raise CollectionError("connection", f"{path}: {error.strerror or error}") from None
        if not data:
            raise CollectionError("connection", f"{path} closed the connection before answering")
        try:
            events = connection.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            raise CollectionError("malformed", f"{path}: HTTP/2 protocol error: {error}") from None
        for event in events:
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                headers.update(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if len(body) > MAX_RESPONSE:
                    raise CollectionError("malformed", f"{path}: response larger than {MAX_RESPONSE} bytes")
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                ended = True
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise CollectionError("connection", f"{path} reset the call (HTTP/2 error {event.error_code})")


def _unframe(headers: dict[str, str], body: bytes, path: str) -> bytes:
    if headers.get(":status") != "200":
        raise CollectionError(f"http_{headers.get(':status', 'none')}", f"{path} answered HTTP {headers.get(':status')}")
    status = headers.get("grpc-status", "")
    if status != "0":
        name = _GRPC_STATUS[int(status)] if status.isdigit() and int(status) < len(_GRPC_STATUS) else "unknown"
        raise CollectionError(f"grpc_{name}", f"{path}: gRPC status {name}: {headers.get('grpc-message', '')}")
    if len(body) < 5 or body[0] != 0:
        raise CollectionError("malformed", f"{path}: not one uncompressed gRPC message")
    length = int.from_bytes(body[1:5], "big")
    if len(body) != 5 + length:
        raise CollectionError("malformed", f"{path}: gRPC message of {len(body) - 5} bytes, framed as {length}")
    return body[5:]


# -- protobuf wire format ------------------------------------------------------------------------


def parse_list_response(message: bytes) -> list[Allocation]:
    """The device allocations in a ListPodResourcesResponse."""
    allocations = []
    try:
        for pod in _repeated(message, 1):
            name, namespace = _string(pod, 1), _string(pod, 2)
            for container in _repeated(pod, 3):
                container_name = _string(container, 1)
                for devices in _repeated(container, 2):
                    resource = _string(devices, 1)
                    for device_id in _repeated(devices, 2):
                        allocations.append(Allocation(namespace, name, container_name, resource, device_id.decode()))
    except (ValueError, UnicodeDecodeError) as error:
        raise CollectionError("malformed", f"undecodable pod-resources response: {error}") from None
    return allocations


def _fields(message: bytes) -> Iterator[tuple[int, bytes | None]]:
    """(field number, bytes) for each length-delimited field; other wire types give None."""
    position, end = 0, len(message)
    while position < end:
        key, position = _varint(message, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, position = _varint(message, position)
            yield number, None
        elif wire_type == 1 or wire_type == 5:
            position += 8 if wire_type == 1 else 4
            yield number, None
        elif wire_type == 2:
            length, position = _varint(message, position)
            if position + length > end:
                raise ValueError(f"field {number} runs past the end of its message")
            yield number, message[position:position + length]
            position += length
        else:
            raise ValueError(f"unsupported wire type {wire_type} in field {number}")
    if position != end:
        raise ValueError("truncated fixed-width field")


def _varint(message: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(message) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = message[position]
        value |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            return value, position


def _repeated(message: bytes, number: int) -> list[bytes]:
    return [value for field, value in _fields(message) if field == number and value is not None]


def _string(message: bytes, number: int) -> str:
    values = _repeated(message, number)
    return values[-1].decode() if values else ""  # proto3: the last occurrence wins
