//! How deeply a YAML document nests, found by one linear pass before it is
//! parsed.
//!
//! The YAML parser (libyaml, through serde_yaml) spends time proportional to
//! the number of tokens times the depth of flow collections (`[[[[...]]]]`):
//! a 200 KB body 100,000 levels deep kept a CPU busy for a minute before
//! serde_yaml's own limit of 128 levels refused it. This pass counts the open
//! collections the way libyaml's scanner does (flow collections, and block
//! collections by their indentation), skipping quoted and block scalars,
//! comments, tags and anchors, and stops at the first place deeper than the
//! limit. It follows libyaml's rules for where a token starts, so a bracket
//! inside a scalar is not counted and a real one is; where libyaml would stop
//! with a syntax error, this pass goes on, which can only count more.
//!
//! The count is never more than the document's real nesting (every counted
//! level is a collection the parser opens), so a document within serde_yaml's
//! limit is never refused here.

/// serde_yaml's and serde_json's own recursion limit.
pub const MAX_DEPTH: usize = 128;

/// Where a document first nests deeper than the limit (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// `Err` with the position of the first collection opened past `max` levels.
pub fn check(text: &str, max: usize) -> Result<(), TooDeep> {
    Scanner {
        b: text.as_bytes(),
        i: 0,
        line: 0,
        col: 0,
        flow: 0,
        indent: -1,
        indents: Vec::new(),
        simple_key_allowed: true,
        key: None,
        max,
    }
    .run()
}

/// A possible simple key at flow level 0 (libyaml keeps one per flow level;
/// only level 0's matters here, for the indentation of a block mapping).
#[derive(Clone, Copy)]
struct Key {
    line: usize,
    col: usize,
    index: usize,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    /// In characters, like libyaml's mark.
    col: usize,
    flow: usize,
    indent: isize,
    indents: Vec<isize>,
    simple_key_allowed: bool,
    key: Option<Key>,
    max: usize,
}

fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn is_uri(c: u8) -> bool {
    is_alpha(c) || b";/?:@&=+$.%!~*'()".contains(&c)
}

impl Scanner<'_> {
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn end(&self) -> bool {
        self.i >= self.b.len() || self.b[self.i] == 0
    }

    /// Length in bytes of the line break at `i + k`, 0 if there is none
    /// (`\r\n` counts as one break, as do NEL, LS and PS).
    fn break_len(&self, k: usize) -> usize {
        match (self.at(k), self.at(k + 1), self.at(k + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\r', _, _) | (b'\n', _, _) => 1,
            (0xC2, 0x85, _) => 2,
            (0xE2, 0x80, 0xA8) | (0xE2, 0x80, 0xA9) => 3,
            _ => 0,
        }
    }

    fn is_break(&self, k: usize) -> bool {
        self.break_len(k) > 0
    }

    fn is_blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.is_break(k) || self.at(k) == 0
    }

    /// One character forward (the text is UTF-8).
    fn skip(&mut self) {
        let Some(&c) = self.b.get(self.i) else {
            return;
        };
        let width = match c {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        self.i = (self.i + width).min(self.b.len());
        self.col += 1;
    }

    fn skip_line(&mut self) {
        let n = self.break_len(0);
        if n > 0 {
            self.i += n;
            self.line += 1;
            self.col = 0;
        }
    }

    fn document_marker(&self) -> bool {
        self.col == 0
            && (self.b[self.i..].starts_with(b"---") || self.b[self.i..].starts_with(b"..."))
            && self.is_blankz(3)
    }

    fn too_deep(&self) -> Result<(), TooDeep> {
        if self.indents.len() + self.flow > self.max {
            return Err(TooDeep {
                line: self.line + 1,
                column: self.col + 1,
            });
        }
        Ok(())
    }

    fn roll_indent(&mut self, column: usize) -> Result<(), TooDeep> {
        if self.flow == 0 && self.indent < column as isize {
            self.indents.push(self.indent);
            self.indent = column as isize;
            self.too_deep()?;
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: isize) {
        if self.flow != 0 {
            return;
        }
        while self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    fn save_key(&mut self) {
        if self.flow == 0 && self.simple_key_allowed {
            self.key = Some(Key {
                line: self.line,
                col: self.col,
                index: self.i,
            });
        }
    }

    fn remove_key(&mut self) {
        if self.flow == 0 {
            self.key = None;
        }
    }

    /// libyaml forgets a key that did not get its `:` on the same line or
    /// within 1024 characters.
    fn live_key(&self) -> Option<Key> {
        self.key
            .filter(|k| k.line == self.line && k.index + 1024 >= self.i)
    }

    fn run(mut self) -> Result<(), TooDeep> {
        loop {
            self.skip_to_next_token();
            if self.live_key().is_none() {
                self.key = None;
            }
            self.unroll_indent(self.col as isize);
            if self.end() {
                return Ok(());
            }
            let c = self.at(0);
            if self.col == 0 && c == b'%' {
                while !self.end() && !self.is_break(0) {
                    self.skip();
                }
                continue;
            }
            if self.document_marker() {
                self.unroll_indent(-1);
                self.remove_key();
                self.simple_key_allowed = false;
                for _ in 0..3 {
                    self.skip();
                }
                continue;
            }
            match c {
                b'[' | b'{' => {
                    self.save_key();
                    self.flow += 1;
                    self.too_deep()?;
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b']' | b'}' => {
                    self.remove_key();
                    self.flow = self.flow.saturating_sub(1);
                    self.simple_key_allowed = false;
                    self.skip();
                }
                b',' => {
                    self.remove_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'-' if self.is_blankz(1) => {
                    self.roll_indent(self.col)?;
                    self.remove_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'?' if self.flow > 0 || self.is_blankz(1) => {
                    self.roll_indent(self.col)?;
                    self.remove_key();
                    self.simple_key_allowed = self.flow == 0;
                    self.skip();
                }
                b':' if self.flow > 0 || self.is_blankz(1) => {
                    match self.live_key().filter(|_| self.flow == 0) {
                        Some(key) => {
                            self.roll_indent(key.col)?;
                            self.key = None;
                            self.simple_key_allowed = false;
                        }
                        None => {
                            self.roll_indent(self.col)?;
                            self.simple_key_allowed = self.flow == 0;
                        }
                    }
                    self.skip();
                }
                b'*' | b'&' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.skip();
                    while is_alpha(self.at(0)) {
                        self.skip();
                    }
                }
                b'!' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.tag();
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.remove_key();
                    self.simple_key_allowed = true;
                    self.block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.quoted(c);
                }
                _ if self.plain_start(c) => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.plain();
                }
                // libyaml stops here ("cannot start any token"); going on
                // can only count more.
                _ => self.skip(),
            }
        }
    }

    fn plain_start(&self, c: u8) -> bool {
        !(self.is_blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c))
            || (c == b'-' && !self.is_blank(1))
            || (self.flow == 0 && (c == b'?' || c == b':') && !self.is_blankz(1))
    }

    fn skip_to_next_token(&mut self) {
        loop {
            if self.col == 0 && self.b[self.i..].starts_with("\u{feff}".as_bytes()) {
                self.skip();
            }
            while self.at(0) == b' '
                || ((self.flow > 0 || !self.simple_key_allowed) && self.at(0) == b'\t')
            {
                self.skip();
            }
            if self.at(0) == b'#' {
                while !self.end() && !self.is_break(0) {
                    self.skip();
                }
            }
            if !self.is_break(0) {
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    fn tag(&mut self) {
        self.skip();
        if self.at(0) == b'<' {
            self.skip();
            while is_uri(self.at(0)) || b",[]".contains(&self.at(0)) {
                self.skip();
            }
            if self.at(0) == b'>' {
                self.skip();
            }
        } else {
            while is_uri(self.at(0)) {
                self.skip();
            }
        }
    }

    fn quoted(&mut self, quote: u8) {
        let single = quote == b'\'';
        self.skip();
        loop {
            if self.document_marker() || self.end() {
                // libyaml stops with an error; go on from here.
                return;
            }
            while !self.is_blankz(0) {
                if single && self.at(0) == b'\'' && self.at(1) == b'\'' {
                    self.skip();
                    self.skip();
                    continue;
                }
                if self.at(0) == quote {
                    break;
                }
                if !single && self.at(0) == b'\\' {
                    self.skip();
                    if self.is_break(0) {
                        self.skip_line();
                        break;
                    }
                    self.skip();
                    continue;
                }
                self.skip();
            }
            if self.at(0) == quote {
                self.skip();
                return;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    fn block_scalar(&mut self) {
        self.skip();
        let mut increment = 0isize;
        let digit = |c: u8| (b'1'..=b'9').contains(&c);
        if matches!(self.at(0), b'+' | b'-') {
            self.skip();
            if digit(self.at(0)) {
                increment = (self.at(0) - b'0') as isize;
                self.skip();
            }
        } else if digit(self.at(0)) {
            increment = (self.at(0) - b'0') as isize;
            self.skip();
            if matches!(self.at(0), b'+' | b'-') {
                self.skip();
            }
        }
        while self.is_blank(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            while !self.end() && !self.is_break(0) {
                self.skip();
            }
        }
        if !self.is_break(0) {
            // libyaml stops ("did not find expected comment or line break").
            return;
        }
        self.skip_line();
        let mut indent = if increment > 0 {
            if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            }
        } else {
            0
        };
        if !self.block_breaks(&mut indent) {
            return;
        }
        while self.col as isize == indent && !self.end() {
            while !self.end() && !self.is_break(0) {
                self.skip();
            }
            if self.end() {
                return;
            }
            self.skip_line();
            if !self.block_breaks(&mut indent) {
                return;
            }
        }
    }

    /// Empty lines and indentation of a block scalar; false where libyaml
    /// stops (a tab as indentation).
    fn block_breaks(&mut self, indent: &mut isize) -> bool {
        let mut max_indent = 0isize;
        loop {
            while (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.col as isize);
            if (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b'\t' {
                return false;
            }
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        true
    }

    fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_marker() || self.at(0) == b'#' {
                break;
            }
            while !self.is_blankz(0) {
                let c = self.at(0);
                if c == b':'
                    && (self.is_blankz(1) || self.flow > 0 && b",?[]{}".contains(&self.at(1)))
                {
                    break;
                }
                if self.flow > 0 && b",[]{}".contains(&c) {
                    break;
                }
                self.skip();
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && (self.col as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }
}

#[cfg(test)]
mod tests;
