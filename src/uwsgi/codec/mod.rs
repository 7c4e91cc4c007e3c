//! The uwsgi protocol as values: request packets as nginx's `uwsgi_pass` builds them
//! (`request`, on top of the packet format in `packet`), and uWSGI's answers (`response`
//! for the head, `chunked` for an app's own chunked body). No sockets, files or clocks:
//! everything here is tested from byte vectors and fuzzed.

pub mod chunked;
pub mod packet;
pub mod request;
pub mod response;
