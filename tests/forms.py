"""multipart/form-data bodies built by hand, for the tests of the parser and of the key."""

from inference_gate.core.multipart import FormField


def form_body(fields: list[FormField], boundary: str) -> bytes:
    """The body RFC 7578 describes for `fields`, with quotes and backslashes escaped in names."""
    parts = []
    for field in fields:
        disposition = f'form-data; name="{escaped(field.name)}"'
        if field.filename is not None:
            disposition += f'; filename="{escaped(field.filename)}"'
        head = f"Content-Disposition: {disposition}\r\n"
        if field.content_type is not None:
            head += f"Content-Type: {field.content_type}\r\n"
        parts.append(f"--{boundary}\r\n{head}\r\n".encode() + field.content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def content_type_for(boundary: str) -> str:
    return f"multipart/form-data; boundary={boundary}"
