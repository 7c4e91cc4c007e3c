//! nginx's configuration syntax, as `ngx_conf_parse` reads it: directives of words ended
//! by `;` or followed by a `{ ... }` block, `#` comments to the end of the line, words
//! quoted with `"` or `'`, backslash escapes (`\"`, `\'`, `\\`, `\t`, `\r`, `\n`; any
//! other is kept as written), `${name}` inside a word. Pure: text in, a tree or the
//! first error with its line and column out.

/// One directive: its words (the name first) and, for a block, what is inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
    /// Which file (an index the caller gives meaning to) and where in it.
    pub file: usize,
    pub line: usize,
    pub column: usize,
}

/// What stopped the parse, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub file: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses one file's text (`file` is recorded in every directive and error).
pub fn parse(text: &str, file: usize) -> Result<Vec<Directive>, SyntaxError> {
    let mut p = Parser { bytes: text.as_bytes(), pos: 0, line: 1, column: 1, file };
    let body = p.block_body(0)?;
    Ok(body)
}

/// Blocks nested deeper than this are refused (a file cannot exhaust the stack).
const MAX_DEPTH: usize = 64;

struct Parser<'t> {
    bytes: &'t [u8],
    pos: usize,
    line: usize,
    column: usize,
    file: usize,
}

enum Token {
    Word(String),
    Semicolon,
    Open,
    Close,
    End,
}

impl Parser<'_> {
    fn error(&self, line: usize, column: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError { file: self.file, line, column, message: message.into() }
    }

    fn bump(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The directives up to the block's `}` (depth > 0) or the end of the file (depth 0).
    fn block_body(&mut self, depth: usize) -> Result<Vec<Directive>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            let (line, column) = self.skip_space();
            match self.token()? {
                Token::End if depth == 0 => return Ok(out),
                Token::End => {
                    return Err(self.error(self.line, self.column, "unexpected end of file, expecting \"}\""))
                }
                Token::Close if depth > 0 => return Ok(out),
                Token::Close => return Err(self.error(line, column, "unexpected \"}\"")),
                Token::Semicolon => return Err(self.error(line, column, "unexpected \";\"")),
                Token::Open => {
                    return Err(self.error(
                        line,
                        column,
                        "unexpected \"{\" (a block needs a directive name before it)",
                    ))
                }
                Token::Word(name) => {
                    let mut d =
                        Directive { name, args: Vec::new(), block: None, file: self.file, line, column };
                    loop {
                        let (l, c) = self.skip_space();
                        match self.token()? {
                            Token::Word(w) => d.args.push(w),
                            Token::Semicolon => break,
                            Token::Open => {
                                if depth + 1 > MAX_DEPTH {
                                    return Err(self.error(l, c, "blocks nested too deep"));
                                }
                                d.block = Some(self.block_body(depth + 1)?);
                                break;
                            }
                            Token::Close => {
                                return Err(self.error(
                                    l,
                                    c,
                                    format!("unexpected \"}}\": \"{}\" is not ended with \";\"", d.name),
                                ))
                            }
                            Token::End => {
                                return Err(self.error(
                                    self.line,
                                    self.column,
                                    format!("unexpected end of file: \"{}\" is not ended with \";\"", d.name),
                                ))
                            }
                        }
                    }
                    out.push(d);
                }
            }
        }
    }

    /// Skips spaces and comments; where the next token starts.
    fn skip_space(&mut self) -> (usize, usize) {
        while let Some(b) = self.peek() {
            if b == b'#' {
                while let Some(b) = self.peek() {
                    if b == b'\n' {
                        break;
                    }
                    self.bump();
                }
            } else if b.is_ascii_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
        (self.line, self.column)
    }

    fn token(&mut self) -> Result<Token, SyntaxError> {
        let (line, column) = (self.line, self.column);
        let Some(b) = self.peek() else { return Ok(Token::End) };
        match b {
            b';' => {
                self.bump();
                Ok(Token::Semicolon)
            }
            b'{' => {
                self.bump();
                Ok(Token::Open)
            }
            b'}' => {
                self.bump();
                Ok(Token::Close)
            }
            b'"' | b'\'' => {
                self.bump();
                let mut raw = Vec::new();
                loop {
                    match self.bump() {
                        None => return Err(self.error(line, column, "unterminated quoted string")),
                        Some(b'\\') => {
                            raw.push(b'\\');
                            match self.bump() {
                                Some(e) => raw.push(e),
                                None => return Err(self.error(line, column, "unterminated quoted string")),
                            }
                        }
                        Some(q) if q == b => break,
                        Some(other) => raw.push(other),
                    }
                }
                // nginx: a quoted word must be followed by a space, `;`, `{` or `}`
                if let Some(next) = self.peek() {
                    if !(next.is_ascii_whitespace() || matches!(next, b';' | b'{' | b'}')) {
                        return Err(self.error(
                            self.line,
                            self.column,
                            format!("unexpected \"{}\" after a quoted string", next as char),
                        ));
                    }
                }
                Ok(Token::Word(unescape(&raw)))
            }
            _ => {
                let mut raw = Vec::new();
                while let Some(b) = self.peek() {
                    if b.is_ascii_whitespace() || b == b';' || b == b'{' || b == b'}' {
                        // `${name}`: the braces belong to the word
                        if b == b'{' && raw.last() == Some(&b'$') {
                            self.bump();
                            raw.push(b'{');
                            loop {
                                match self.bump() {
                                    Some(b'}') => {
                                        raw.push(b'}');
                                        break;
                                    }
                                    Some(c) if !c.is_ascii_whitespace() && c != b';' => raw.push(c),
                                    _ => {
                                        return Err(self.error(line, column, "unterminated ${...} variable"))
                                    }
                                }
                            }
                            continue;
                        }
                        break;
                    }
                    self.bump();
                    raw.push(b);
                    if b == b'\\' {
                        if let Some(e) = self.bump() {
                            raw.push(e);
                        }
                    }
                }
                Ok(Token::Word(unescape(&raw)))
            }
        }
    }
}

/// nginx's unescaping of a word.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            match raw[i + 1] {
                b'"' | b'\'' | b'\\' => {
                    out.push(raw[i + 1]);
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(d: &Directive) -> Vec<&str> {
        std::iter::once(d.name.as_str()).chain(d.args.iter().map(String::as_str)).collect()
    }

    #[test]
    fn blocks_words_quotes_comments() {
        let t = parse(
            "# top\nserver {\n  listen 80 default_server; # the port\n  location ~ ^/_themes/([^/]+)/(.*)$ {\n    alias \"/srv/a b/$1\";\n  }\n  add_header X-A 'it\\'s' always;\n  set $x ${host}z;\n}\n",
            3,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        let server = &t[0];
        assert_eq!((server.name.as_str(), server.line, server.column, server.file), ("server", 2, 1, 3));
        let body = server.block.as_ref().unwrap();
        assert_eq!(words(&body[0]), ["listen", "80", "default_server"]);
        assert_eq!(words(&body[1]), ["location", "~", "^/_themes/([^/]+)/(.*)$"]);
        assert_eq!(body[1].line, 4);
        assert_eq!(words(&body[1].block.as_ref().unwrap()[0]), ["alias", "/srv/a b/$1"]);
        assert_eq!(words(&body[2]), ["add_header", "X-A", "it's", "always"]);
        assert_eq!(words(&body[3]), ["set", "$x", "${host}z"]);
    }

    #[test]
    fn errors_say_where() {
        let e = |text: &str| parse(text, 0).unwrap_err();
        let x = e("server {\n  listen 80;\n");
        assert!(x.message.contains("expecting \"}\""), "{x:?}");
        let x = e("server {\n}\n}\n");
        assert_eq!((x.line, x.column), (3, 1));
        assert!(x.message.contains("unexpected \"}\""));
        let x = e("root \"/srv;\n");
        assert_eq!((x.line, x.column, x.message.as_str()), (1, 6, "unterminated quoted string"));
        let x = e("server {\n  listen 80\n}\n");
        assert_eq!(x.line, 3);
        assert!(x.message.contains("\"listen\" is not ended"), "{x:?}");
        let x = e("listen 80");
        assert!(x.message.contains("end of file"));
        let x = e(";");
        assert_eq!(x.message, "unexpected \";\"");
        let deep = "a {".repeat(100);
        assert!(e(&deep).message.contains("too deep"));
    }

    #[test]
    fn escapes_as_nginx() {
        assert_eq!(unescape(br#"a\"b\\c\td\x"#), "a\"b\\c\td\\x");
    }
}
