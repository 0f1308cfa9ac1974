//! Small input checks shared by every request type. Each names the field it
//! refuses, so the HTTP error can point at it.

use chrono::NaiveDate;

use crate::error::{Error, Result};

/// A required text: trimmed, not empty, at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    limit(field, v, max)?;
    Ok(v.to_string())
}

/// An optional text: blank becomes `None`.
pub fn opt_text(field: &str, value: &Option<String>, max: usize) -> Result<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => {
            limit(field, v, max)?;
            Ok(Some(v.to_string()))
        }
    }
}

fn limit(field: &str, v: &str, max: usize) -> Result<()> {
    let n = v.chars().count();
    if n > max {
        return Err(Error::invalid(
            field,
            format!("is {n} characters long; the limit is {max}"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A short identifier: letters, digits, `-`, `_`, `.`.
pub fn ident(field: &str, value: &str, max: usize) -> Result<String> {
    let v = text(field, value, max)?;
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::invalid(
            field,
            "may contain only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(v)
}

pub fn opt_email(field: &str, value: &Option<String>) -> Result<Option<String>> {
    let v = opt_text(field, value, 254)?;
    if let Some(e) = &v {
        let ok = match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
            }
            None => false,
        };
        if !ok {
            return Err(Error::invalid(
                field,
                format!("{e:?} is not an e-mail address"),
            ));
        }
    }
    Ok(v)
}

/// Phone numbers: digits with optional leading `+` and the usual separators.
pub fn opt_phone(field: &str, value: &Option<String>) -> Result<Option<String>> {
    let v = opt_text(field, value, 40)?;
    if let Some(p) = &v {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let ok = digits >= 3
            && p.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || " -()./".contains(c) || (c == '+' && i == 0));
        if !ok {
            return Err(Error::invalid(
                field,
                format!("{p:?} is not a phone number"),
            ));
        }
    }
    Ok(v)
}

/// The digits of a phone number, for matching however it was typed.
pub fn phone_digits(p: &str) -> String {
    p.chars().filter(char::is_ascii_digit).collect()
}

pub fn date(field: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| Error::invalid(field, format!("{value:?} is not a date like 2026-12-31")))
}

pub fn opt_date(field: &str, value: &Option<String>) -> Result<Option<NaiveDate>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => date(field, v).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field() {
        let e = text("summary", "   ", 10).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("summary: must not be empty"));
        assert!(text("summary", &"x".repeat(11), 10).is_err());
        assert!(text("summary", "ok\u{0}", 10).is_err());
        assert!(opt_email("email", &Some("a@b.example".into())).is_ok());
        assert!(opt_email("email", &Some("nope".into())).is_err());
        assert!(opt_phone("phone", &Some("+49 (30) 1234-5".into())).is_ok());
        assert!(opt_phone("phone", &Some("12+3".into())).is_err());
        assert_eq!(phone_digits("+49 30 123"), "4930123");
        assert!(date("d", "2026-02-30").is_err());
        assert!(ident("code", "ACME-1", 20).is_ok());
        assert!(ident("code", "AC ME", 20).is_err());
    }
}
