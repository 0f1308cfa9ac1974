//! Our own SNMP data types: object identifiers, values and variable bindings.
//!
//! Everything above [`super::backend`] speaks these types, never the SNMP
//! crate's, so the crate can be replaced without touching the pollers. They
//! are deliberately small: only what the agent reads from devices.

use std::fmt;

/// An object identifier, as its arcs (`1.3.6.1.2.1.1.5.0` is
/// `[1, 3, 6, 1, 2, 1, 1, 5, 0]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(Vec<u32>);

impl Oid {
    /// An OID from its arcs.
    pub fn new(arcs: impl Into<Vec<u32>>) -> Self {
        Self(arcs.into())
    }

    /// The arcs of this OID.
    pub fn arcs(&self) -> &[u32] {
        &self.0
    }

    /// The arcs after `prefix` when this OID lies strictly below it (the row
    /// index of a table column, for example); `None` otherwise.
    pub fn index_under(&self, prefix: &[u32]) -> Option<&[u32]> {
        match self.0.strip_prefix(prefix) {
            Some(rest) if !rest.is_empty() => Some(rest),
            _ => None,
        }
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for arc in &self.0 {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

/// A value read from a device. Exceptions (`noSuchObject`,
/// `noSuchInstance`, `endOfMibView`) are values too, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `INTEGER` (also enumerations such as `ifOperStatus`).
    Integer(i64),
    /// `OCTET STRING`: text, MAC addresses and other binary data.
    OctetString(Vec<u8>),
    /// `OBJECT IDENTIFIER`.
    ObjectIdentifier(Oid),
    /// `IpAddress`.
    IpAddress([u8; 4]),
    /// `Counter32`.
    Counter32(u32),
    /// `Gauge32` / `Unsigned32`.
    Gauge32(u32),
    /// `TimeTicks`, in hundredths of a second.
    TimeTicks(u32),
    /// `Counter64`.
    Counter64(u64),
    /// `Opaque`.
    Opaque(Vec<u8>),
    /// `NULL`.
    Null,
    /// The device does not implement the object.
    NoSuchObject,
    /// The object exists but not this instance.
    NoSuchInstance,
    /// A walk ran past the end of the device's MIB view.
    EndOfMibView,
    /// A type the agent does not interpret (e.g. `NsapAddress`).
    Other,
}

impl Value {
    /// Whether this is one of the three exception values rather than data.
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            Self::NoSuchObject | Self::NoSuchInstance | Self::EndOfMibView
        )
    }

    /// The value as a signed integer, for every integer-like type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Integer(v) => Some(v),
            Self::Counter32(v) | Self::Gauge32(v) | Self::TimeTicks(v) => Some(i64::from(v)),
            Self::Counter64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an unsigned integer, for every non-negative
    /// integer-like value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Integer(v) => u64::try_from(v).ok(),
            Self::Counter32(v) | Self::Gauge32(v) | Self::TimeTicks(v) => Some(u64::from(v)),
            Self::Counter64(v) => Some(v),
            _ => None,
        }
    }

    /// An `OCTET STRING` as text: invalid UTF-8 is replaced, trailing NULs
    /// (common in display strings) and surrounding white space are trimmed.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::OctetString(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                Some(text.trim_end_matches('\0').trim().to_owned())
            }
            _ => None,
        }
    }

    /// An `OBJECT IDENTIFIER` value.
    pub fn as_oid(&self) -> Option<&Oid> {
        match self {
            Self::ObjectIdentifier(oid) => Some(oid),
            _ => None,
        }
    }
}

/// One variable binding: an OID and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarBind {
    /// The object instance.
    pub oid: Oid,
    /// Its value.
    pub value: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_display_and_index() {
        let oid = Oid::new(vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 7]);
        assert_eq!(oid.to_string(), "1.3.6.1.2.1.2.2.1.2.7");
        assert_eq!(
            oid.index_under(&[1, 3, 6, 1, 2, 1, 2, 2, 1, 2]),
            Some(&[7][..])
        );
        assert_eq!(oid.index_under(oid.arcs()), None);
        assert_eq!(oid.index_under(&[1, 3, 6, 1, 4]), None);
        assert_eq!(Oid::new(Vec::new()).to_string(), "");
    }

    #[test]
    fn value_conversions() {
        assert_eq!(Value::Integer(-3).as_i64(), Some(-3));
        assert_eq!(Value::Integer(-3).as_u64(), None);
        assert_eq!(Value::Counter64(u64::MAX).as_i64(), None);
        assert_eq!(Value::Counter64(u64::MAX).as_u64(), Some(u64::MAX));
        assert_eq!(Value::TimeTicks(100).as_u64(), Some(100));
        assert_eq!(Value::Null.as_u64(), None);
        assert_eq!(
            Value::OctetString(b" eth0\0\0".to_vec())
                .as_text()
                .as_deref(),
            Some("eth0")
        );
        assert_eq!(
            Value::OctetString(vec![0xff, b'a']).as_text().as_deref(),
            Some("\u{fffd}a")
        );
        assert!(Value::EndOfMibView.is_exception());
        assert!(!Value::Null.is_exception());
    }
}
