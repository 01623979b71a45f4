//! `If-Match` and `If-None-Match` as RFC 9110 (section 13.1) has them.
//!
//! Each is `*` or a comma-separated list of entity tags (`"opaque"` or
//! `W/"opaque"`), possibly spread over several header lines, with empty
//! list elements allowed. What the broker answers:
//! - a header that is not of that form is malformed: 400 naming it;
//! - `If-Match` compares strongly: a weak tag, or a well-formed tag that is
//!   not one of this API's (`"<64 hex digits>"`), can never match, so a list
//!   of only such tags, or an empty list, fails with 412;
//! - `If-None-Match` compares weakly: `W/"<hex>"` excludes the entry whose
//!   strong ETag is `"<hex>"`; foreign tags exclude nothing.

use axum::http::{header, HeaderMap, HeaderName};

use super::error::{ApiError, ApiResult};
use crate::store::{Etag, Precondition, Tags};

/// The preconditions of a request's headers.
pub(super) fn precondition(headers: &HeaderMap) -> ApiResult<Precondition> {
    Ok(Precondition {
        if_match: tags(headers, header::IF_MATCH, false)?,
        if_none_match: tags(headers, header::IF_NONE_MATCH, true)?,
    })
}

/// The tags of every `name` header line, or `None` when there is none.
fn tags(headers: &HeaderMap, name: HeaderName, weak_matches: bool) -> ApiResult<Option<Tags>> {
    let field = match name.as_str() {
        "if-match" => "If-Match",
        _ => "If-None-Match",
    };
    let mut lines = headers.get_all(&name).iter().peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let mut found = Vec::new();
    let mut any = false;
    let mut count = 0;
    for line in lines {
        let text = line
            .to_str()
            .map_err(|_| ApiError::invalid(field, format!("{field} is not visible ASCII")))?;
        for tag in parse_list(text).map_err(|why| {
            ApiError::invalid(
                field,
                format!("{field} `{text}` is not `*` or a list of entity tags: {why}"),
            )
        })? {
            count += 1;
            match tag {
                Parsed::Star => any = true,
                Parsed::Tag { weak, opaque } => {
                    if weak && !weak_matches {
                        continue; // never matches under strong comparison
                    }
                    if let Some(etag) = Etag::parse_quoted(&format!("\"{opaque}\"")) {
                        found.push(etag);
                    }
                }
            }
        }
    }
    if any {
        // `*` is the whole field value, never a list member.
        if count > 1 {
            return Err(ApiError::invalid(
                field,
                format!("{field} `*` cannot be combined with entity tags"),
            ));
        }
        return Ok(Some(Tags::Any));
    }
    Ok(Some(Tags::List(found)))
}

/// One element of the list.
#[derive(Debug, PartialEq, Eq)]
enum Parsed<'a> {
    Star,
    Tag { weak: bool, opaque: &'a str },
}

/// Splits `*` or `#entity-tag` (RFC 9110 5.6.1: empty elements and optional
/// whitespace around commas allowed).
fn parse_list(text: &str) -> Result<Vec<Parsed<'_>>, &'static str> {
    let mut out = Vec::new();
    let mut rest = text.trim_matches([' ', '\t']);
    if rest == "*" {
        return Ok(vec![Parsed::Star]);
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start_matches([' ', '\t']);
            continue;
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let r = r
            .strip_prefix('"')
            .ok_or("an entity tag must be a quoted string")?;
        let end = r.find('"').ok_or("an entity tag lacks its closing quote")?;
        let opaque = &r[..end];
        // etagc = %x21 / %x23-7E / obs-text (no space, no quote, no controls)
        if opaque.bytes().any(|b| b <= 0x20 || b == b'"' || b == 0x7f) {
            return Err("an entity tag holds a character it may not");
        }
        out.push(Parsed::Tag { weak, opaque });
        rest = r[end + 1..].trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err("entity tags must be separated by commas");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn etag(c: char) -> (Etag, String) {
        let hex: String = std::iter::repeat_n(c, 64).collect();
        (Etag::parse_quoted(&format!("\"{hex}\"")).unwrap(), hex)
    }

    #[test]
    fn lists_of_tags_and_star() {
        let (a, ah) = etag('a');
        let (b, bh) = etag('b');
        let p = precondition(&headers(&[(
            "if-match",
            &format!("\"{ah}\" , W/\"{bh}\",\"00\",, "),
        )]))
        .unwrap();
        // The weak and the foreign tag can never match.
        assert_eq!(p.if_match, Some(Tags::List(vec![a])));
        let p = precondition(&headers(&[("if-none-match", &format!("W/\"{bh}\""))])).unwrap();
        assert_eq!(p.if_none_match, Some(Tags::List(vec![b])));
        let p = precondition(&headers(&[("if-match", "*")])).unwrap();
        assert_eq!(p.if_match, Some(Tags::Any));
        // Several header lines make one list.
        let p = precondition(&headers(&[
            ("if-match", &format!("\"{ah}\"")),
            ("if-match", &format!("\"{bh}\"")),
        ]))
        .unwrap();
        assert_eq!(p.if_match, Some(Tags::List(vec![a, b])));
        // An empty list lists nothing.
        let p = precondition(&headers(&[("if-match", "")])).unwrap();
        assert_eq!(p.if_match, Some(Tags::List(vec![])));
        assert_eq!(precondition(&HeaderMap::new()).unwrap(), Precondition::NONE);
    }

    #[test]
    fn malformed_headers_are_refused() {
        let (_, hex) = etag('c');
        for bad in [
            hex.as_str(),
            "{}",
            "\"unterminated",
            "\"a\" \"b\"",
            "W/x",
            "\"a b\"",
            "*, \"a\"",
        ] {
            let err = precondition(&headers(&[("if-match", bad)])).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("If-Match"), "{bad}");
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
