//! The HTTP/1.1 response the request steps write, read back as an HTTP/2 response: the
//! head becomes a status and header fields (the connection-specific ones dropped,
//! RFC 9113 §8.2.2), the body's framing (Content-Length, chunked, or none for HEAD,
//! 1xx, 204 and 304) is taken off, and what is left is the DATA.
//!
//! Pure: fed the bytes as they are written, it says what it consumed and what they were.

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::http1::body::BodyDecoder;
use crate::http1::request_head::BodyFraming;

/// The most a response head may take (our own heads; an app's are bounded before this).
const MAX_HEAD: usize = 64 << 10;

/// What some written bytes were.
#[derive(Debug)]
pub enum Event {
    /// Not yet a whole head or a piece of data: more bytes are needed.
    Nothing,
    /// An interim response (`100 Continue`).
    Informational(Response<()>),
    /// The response head; `body`: DATA follows.
    Head { head: Response<()>, body: bool },
    /// Body bytes at this range of the input.
    Data(std::ops::Range<usize>),
    /// The body is complete.
    End,
}

/// Why the written bytes are not a response.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAResponse(pub String);

enum State {
    Head(Vec<u8>),
    Body(BodyDecoder),
    /// No framing: the body runs until the response is ended.
    UntilEnd,
    Done,
}

/// Reads one response, written for a request that was `HEAD` or not.
pub struct ResponseReader {
    state: State,
    head_only: bool,
}

impl ResponseReader {
    pub fn new(head_only: bool) -> ResponseReader {
        ResponseReader { state: State::Head(Vec::new()), head_only }
    }

    /// The whole response was read (its body framing says so).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The head went out and the body has no framing of its own: ending the stream ends it.
    pub fn ends_with_stream(&self) -> bool {
        matches!(self.state, State::UntilEnd)
    }

    /// The head has been read.
    pub fn head_read(&self) -> bool {
        !matches!(self.state, State::Head(_))
    }

    /// Consumes a prefix of `input`; what it was.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Event), NotAResponse> {
        match &mut self.state {
            State::Head(buf) => {
                // a head is read whole: its end may straddle two writes
                let old = buf.len();
                buf.extend_from_slice(input);
                let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
                    if buf.len() > MAX_HEAD {
                        return Err(NotAResponse("response head too large".into()));
                    }
                    return Ok((input.len(), Event::Nothing));
                };
                let end = end + 4;
                let consumed = end - old;
                let head = std::mem::take(buf);
                let (response, framing) = parse_head(&head[..end], self.head_only)?;
                if response.status().is_informational() {
                    // (the state is still an empty head: the final response follows)
                    return Ok((consumed, Event::Informational(response)));
                }
                let decoder = framing.map(BodyDecoder::new);
                let body = match decoder {
                    Some(d) if d.is_done() => false,
                    Some(d) => {
                        self.state = State::Body(d);
                        true
                    }
                    None => {
                        self.state = State::UntilEnd;
                        true
                    }
                };
                if !body {
                    self.state = State::Done;
                }
                Ok((consumed, Event::Head { head: response, body }))
            }
            State::Body(decoder) => {
                let step =
                    decoder.step(input).map_err(|e| NotAResponse(format!("bad chunked body ({e})")))?;
                let done = decoder.is_done();
                if done {
                    self.state = State::Done;
                }
                if !step.data.is_empty() {
                    // (the last data of a length body: `is_done` says so)
                    return Ok((step.consumed, Event::Data(step.data)));
                }
                Ok((step.consumed, if done { Event::End } else { Event::Nothing }))
            }
            State::UntilEnd => Ok((input.len(), Event::Data(0..input.len()))),
            // (nothing is written after a response; if it were, it is not sent)
            State::Done => Ok((input.len(), Event::Nothing)),
        }
    }
}

/// The head's status and fields, and its body framing (`None`: until the end).
fn parse_head(bytes: &[u8], head_only: bool) -> Result<(Response<()>, Option<BodyFraming>), NotAResponse> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut fields);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(NotAResponse("response head incomplete".into())),
        Err(e) => return Err(NotAResponse(format!("response head: {e}"))),
    }
    let code = parsed.code.unwrap_or(502);
    let status = StatusCode::from_u16(code).map_err(|_| NotAResponse(format!("status {code}")))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    let mut framing = None;
    let headers = response.headers_mut();
    for f in parsed.headers.iter() {
        let name = f.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            framing = Some(BodyFraming::Chunked);
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = crate::ascii::parse_decimal(f.value)
                .ok_or_else(|| NotAResponse("bad Content-Length".into()))?;
            if framing.is_none() {
                framing = Some(BodyFraming::Length(n));
            }
        }
        if ["connection", "keep-alive", "proxy-connection", "upgrade", "te"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(f.value))
        else {
            // (cannot happen for what httparse accepted, bar bytes HTTP/2 forbids: dropped)
            continue;
        };
        headers.append(name, value);
    }
    let no_body = head_only || code == 204 || code == 304 || status.is_informational();
    Ok((response, if no_body { Some(BodyFraming::None) } else { framing }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(reader: &mut ResponseReader, mut input: &[u8]) -> Vec<String> {
        let mut seen = Vec::new();
        let all = input;
        while !input.is_empty() {
            let (n, event) = reader.feed(input).unwrap();
            match event {
                Event::Nothing => {}
                Event::Informational(r) => seen.push(format!("info {}", r.status().as_u16())),
                Event::Head { head, body } => {
                    let mut fields: Vec<String> =
                        head.headers().iter().map(|(n, v)| format!("{n}={}", v.to_str().unwrap())).collect();
                    fields.sort();
                    seen.push(format!("head {} body={body} {}", head.status().as_u16(), fields.join(",")))
                }
                Event::Data(r) => seen.push(format!("data {}", String::from_utf8_lossy(&input[r]))),
                Event::End => seen.push("end".into()),
            }
            assert!(n > 0 || input.is_empty(), "no progress at {}", all.len() - input.len());
            input = &input[n..];
        }
        seen
    }

    #[test]
    fn a_length_body_is_data_then_end() {
        let mut r = ResponseReader::new(false);
        let seen = run(
            &mut r,
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\nabc",
        );
        assert_eq!(seen, ["head 200 body=true content-length=3,x-a=1", "data abc"]);
        assert!(r.is_done());
    }

    #[test]
    fn a_chunked_body_loses_its_framing() {
        let mut r = ResponseReader::new(false);
        let seen = run(
            &mut r,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(seen, ["head 200 body=true ", "data abc", "data de", "end"]);
        assert!(r.is_done());
    }

    #[test]
    fn a_head_may_come_in_pieces() {
        let mut r = ResponseReader::new(false);
        assert!(run(&mut r, b"HTTP/1.1 404 Not Found\r\nContent-Le").is_empty());
        assert_eq!(run(&mut r, b"ngth: 0\r\n\r\n"), ["head 404 body=false content-length=0"]);
        assert!(r.is_done());
    }

    #[test]
    fn head_204_304_have_no_body() {
        for (head_only, raw) in [
            (true, &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..]),
            (false, b"HTTP/1.1 204 No Content\r\n\r\n"),
            (false, b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
        ] {
            let mut r = ResponseReader::new(head_only);
            let seen = run(&mut r, raw);
            assert!(seen[0].contains("body=false"), "{seen:?}");
            assert!(r.is_done());
        }
    }

    #[test]
    fn continue_comes_before_the_response() {
        let mut r = ResponseReader::new(false);
        let seen = run(&mut r, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(seen, ["info 100", "head 200 body=true content-length=1", "data x"]);
    }

    #[test]
    fn without_framing_the_body_runs_to_the_end() {
        let mut r = ResponseReader::new(false);
        let seen = run(&mut r, b"HTTP/1.1 200 OK\r\n\r\nabc");
        assert_eq!(seen, ["head 200 body=true ", "data abc"]);
        assert!(r.ends_with_stream());
    }

    #[test]
    fn garbage_is_refused() {
        let mut r = ResponseReader::new(false);
        assert!(r.feed(b"nope\r\n\r\n").is_err());
        let mut r = ResponseReader::new(false);
        assert!(r.feed(&vec![b'a'; MAX_HEAD + 10]).is_err());
    }
}
