"""AWS wire shapes, pure: what AWS's API Gateway and Lambda put on the wire or hand to a handler.

One module per concept: `ids` (ids, times, ARNs), `websocket_events` (CONNECT/MESSAGE/DISCONNECT and the
REQUEST authorizer's input, error frames), `lambda_context` (the Python runtime's `context`), `proxy_result`
(reading a Lambda proxy result), `policy` (authorizer answers and IAM policy evaluation), `management`
(the @connections API's shapes). No sockets, no asyncio: every function here is tested with plain values.
"""
