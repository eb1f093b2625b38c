//! The lexer of policy expression text: `pg_get_expr` output into [`Token`]s.

use super::parser::ParseError;

/// A lexical token of `pg_get_expr` output.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    /// `::`
    Cast,
    /// Any operator: `=`, `<>`, `->>`, `~~`, `+`…
    Op(String),
    /// An unquoted identifier or keyword, as written (keywords are upper case in
    /// `pg_get_expr` output, identifiers lower case).
    Word(String),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// A single-quoted string literal, unescaped.
    Str(String),
    /// A numeric literal as written.
    Num(String),
}

/// Characters PostgreSQL allows in operator names.
fn is_op_char(c: char) -> bool {
    matches!(
        c,
        '+' | '-'
            | '*'
            | '/'
            | '<'
            | '>'
            | '='
            | '~'
            | '!'
            | '@'
            | '#'
            | '%'
            | '^'
            | '&'
            | '|'
            | '`'
            | '?'
    )
}

/// Splits `text` into tokens; fails on text no token starts with (an unterminated quote…).
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let fail = |tokens: &Vec<Token>, reason: &str| ParseError {
        position: tokens.len(),
        reason: reason.to_string(),
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => push(&mut tokens, &mut i, Token::LParen),
            ')' => push(&mut tokens, &mut i, Token::RParen),
            '[' => push(&mut tokens, &mut i, Token::LBracket),
            ']' => push(&mut tokens, &mut i, Token::RBracket),
            ',' => push(&mut tokens, &mut i, Token::Comma),
            ':' if chars.get(i + 1) == Some(&':') => {
                tokens.push(Token::Cast);
                i += 2;
            }
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                push(&mut tokens, &mut i, Token::Dot)
            }
            '\'' | '"' => {
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(fail(&tokens, "unterminated quoted text")),
                        Some(&ch) if ch == quote => {
                            // A doubled quote is an escaped quote.
                            if chars.get(i + 1) == Some(&quote) {
                                value.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&ch) => {
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(if quote == '\'' {
                    Token::Str(value)
                } else {
                    Token::Quoted(value)
                });
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    i += 1;
                    if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                        i += 1;
                    }
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                tokens.push(Token::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            c if is_op_char(c) => {
                let start = i;
                while i < chars.len() && is_op_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Op(chars[start..i].iter().collect()));
            }
            _ => return Err(fail(&tokens, &format!("unexpected character {c:?}"))),
        }
    }
    Ok(tokens)
}

fn push(tokens: &mut Vec<Token>, i: &mut usize, token: Token) {
    tokens.push(token);
    *i += 1;
}
