//! CSV downloads of console tables (RFC 4180: comma-separated, CRLF line
//! ends, fields with commas, quotes or line breaks quoted, quotes doubled).
//! A cell that a spreadsheet would take for a formula (starting with `=`,
//! `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`, so that
//! text from customers cannot run as one when the file is opened.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// One field, made safe and quoted as needed.
pub fn field(value: &str) -> String {
    let guarded;
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{value}");
        guarded.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// A whole document: the header row, then the rows.
pub fn document<S: AsRef<str>>(head: &[&str], rows: &[Vec<S>]) -> String {
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let fields: Vec<String> = cells.map(field).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    };
    line(&mut head.iter().copied());
    for r in rows {
        line(&mut r.iter().map(AsRef::as_ref));
    }
    out
}

/// A download: `text/csv` as an attachment named `filename` (which must be
/// plain ASCII without quotes; callers build it from fixed words and dates).
pub fn download(filename: &str, body: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("Müller GmbH"), "Müller GmbH");
        assert_eq!(field("87.5"), "87.5");
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("+49 40 5550"), "'+49 40 5550");
        assert_eq!(field("-cmd"), "'-cmd");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\tx"), "'\tx");
        assert_eq!(
            field("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(field("a=b"), "a=b");
    }

    #[test]
    fn documents_have_a_header_and_crlf_rows() {
        let doc = document(&["Case", "Note"], &[vec!["C-1", "a, b"], vec!["C-2", "=x"]]);
        assert_eq!(doc, "Case,Note\r\nC-1,\"a, b\"\r\nC-2,'=x\r\n");
        let empty: &[Vec<String>] = &[];
        assert_eq!(document(&["Only"], empty), "Only\r\n");
    }
}
