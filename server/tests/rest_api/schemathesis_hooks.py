"""Schemathesis hooks for the contract test (fuzzed.rs): how to send the
API's bodies that are not JSON. The document gives each as a string in its
own media type (SDP for WHIP and WHEP, a trickled fragment, a Wasm
component), and schemathesis sends only the types it knows."""

import schemathesis


def _text(_ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8")


schemathesis.serializer("application/sdp", "application/trickle-ice-sdpfrag", "application/wasm")(_text)
