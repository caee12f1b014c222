//! Just enough of Kubernetes' protobuf encoding to read the self-review requests kubectl
//! ≥ 1.32 sends as `application/vnd.kubernetes.protobuf` (its typed clients prefer it for
//! built-in types). Answers stay JSON, which those clients accept too.
//!
//! The encoding: the magic `k8s\0`, then a `runtime.Unknown` message whose field 2 is the
//! object's own protobuf bytes. Field numbers are those of `k8s.io/api`'s
//! `generated.proto` files.

use serde_json::{Map, Value, json};

/// The content type of Kubernetes' protobuf encoding.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One field of a message: its number and, for length-delimited fields, its bytes.
struct Field<'a> {
    number: u64,
    bytes: Option<&'a [u8]>,
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message, in order; `None` when it is malformed.
fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = key >> 3;
        let bytes = match key & 7 {
            0 => {
                varint(&mut buf)?;
                None
            }
            1 => {
                buf = buf.get(8..)?;
                None
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let bytes = buf.get(..len)?;
                buf = buf.get(len..)?;
                Some(bytes)
            }
            5 => {
                buf = buf.get(4..)?;
                None
            }
            _ => return None,
        };
        out.push(Field { number, bytes });
    }
    Some(out)
}

/// The last length-delimited field `number` (protobuf's last-one-wins).
fn field<'a>(fields: &[Field<'a>], number: u64) -> Option<&'a [u8]> {
    fields
        .iter()
        .rev()
        .find(|f| f.number == number)
        .and_then(|f| f.bytes)
}

/// The string fields `names[i]` = field `i + 1` of a message, leaving out empty ones as
/// the JSON encoding does.
fn strings(buf: &[u8], names: &[&str]) -> Option<Value> {
    let fields = fields(buf)?;
    let mut out = Map::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(b) = field(&fields, i as u64 + 1).filter(|b| !b.is_empty()) {
            out.insert(
                (*name).to_string(),
                Value::String(String::from_utf8_lossy(b).into_owned()),
            );
        }
    }
    Some(Value::Object(out))
}

/// The object inside a protobuf-encoded body, `None` when it is not one.
fn object(body: &[u8]) -> Option<&[u8]> {
    let unknown = fields(body.strip_prefix(MAGIC)?)?;
    Some(field(&unknown, 2).unwrap_or_default())
}

/// A `SelfSubjectAccessReview`'s `spec` as JSON, from its protobuf encoding.
pub(crate) fn self_subject_access_review_spec(body: &[u8]) -> Option<Value> {
    let review = fields(object(body)?)?;
    let spec = fields(field(&review, 2).unwrap_or_default())?;
    let mut out = json!({});
    if let Some(b) = field(&spec, 1) {
        out["resourceAttributes"] = strings(
            b,
            &[
                "namespace",
                "verb",
                "group",
                "version",
                "resource",
                "subresource",
                "name",
            ],
        )?;
    }
    if let Some(b) = field(&spec, 2) {
        out["nonResourceAttributes"] = strings(b, &["path", "verb"])?;
    }
    Some(out)
}

/// Whether `body` is a well-formed protobuf-encoded object.
pub(crate) fn is_object(body: &[u8]) -> bool {
    object(body).and_then(fields).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, u8::try_from(bytes.len()).expect("short")];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_review_spec_is_read_from_its_envelope() {
        let attrs = [
            len_field(1, b"demo"),
            len_field(2, b"create"),
            len_field(5, b"pods"),
            len_field(6, b"portforward"),
        ]
        .concat();
        let review = [len_field(1, b""), len_field(2, &len_field(1, &attrs))].concat();
        let type_meta = [
            len_field(1, b"authorization.k8s.io/v1"),
            len_field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [
            MAGIC.to_vec(),
            len_field(1, &type_meta),
            len_field(2, &review),
            len_field(3, b""),
            len_field(4, b""),
        ]
        .concat();
        assert_eq!(
            self_subject_access_review_spec(&body),
            Some(json!({"resourceAttributes": {
                "namespace": "demo", "verb": "create", "resource": "pods", "subresource": "portforward",
            }}))
        );
        assert!(is_object(&body));
        assert_eq!(self_subject_access_review_spec(b"{\"spec\": {}}"), None);
        assert_eq!(
            self_subject_access_review_spec(&body[..body.len() - 3]),
            None
        );
    }
}
