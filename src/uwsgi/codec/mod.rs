//! The uwsgi protocol as values: the request's vars block as nginx's `uwsgi_pass` builds
//! it (`vars_block`, on top of the packet format in `packet`), and the response head the
//! app sends back (`app_response`). An app's own chunked body is HTTP/1.1 framing, decoded
//! by `http1::chunked`. No sockets, files or clocks: everything here is tested from byte
//! vectors and fuzzed.

pub mod app_response;
pub mod packet;
pub mod vars_block;
