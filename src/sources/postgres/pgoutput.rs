//! The `pgoutput` logical decoding messages inside a replication stream's `XLogData`
//! (protocol version 1): relations, and the inserts, updates, deletes and truncates of their
//! rows, with column values in text form. Begin and commit are decoded by the replication
//! crate; origin, type and logical messages are read past. Written here because no
//! maintained crate decodes `pgoutput` without also owning the connection (see `mod.rs`).

use bytes::Bytes;

/// A table as the stream describes it: sent before the first change of each table in a
/// session, and again after its schema changes (`ALTER TABLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Its OID: how changes name it.
    pub id: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `REPLICA IDENTITY`: `d` default (the primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Its columns, in the order of tuples.
    pub columns: Vec<RelationColumn>,
}

/// One column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Its name.
    pub name: String,
    /// Whether it is part of the replica identity (the key).
    pub key: bool,
    /// Its type's OID.
    pub type_id: u32,
}

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// SQL `NULL` (or, in a key-only old tuple, a column outside the key).
    Null,
    /// A TOASTed value the change did not touch: not sent.
    Unchanged,
    /// The value in the type's text form.
    Text(String),
}

/// What the old tuple of an update or delete holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// The key columns only (`K`: replica identity `DEFAULT` or `INDEX`).
    Key,
    /// The whole row (`O`: replica identity `FULL`).
    Full,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A relation's description.
    Relation(Relation),
    /// A row inserted into the relation.
    Insert {
        /// The relation's OID.
        relation: u32,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row updated; the old tuple only when the key changed or identity is `FULL`.
    Update {
        /// The relation's OID.
        relation: u32,
        /// The old row (or key), when sent.
        old: Option<(OldKind, Vec<Datum>)>,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row deleted.
    Delete {
        /// The relation's OID.
        relation: u32,
        /// The old row (or key).
        old: (OldKind, Vec<Datum>),
    },
    /// Relations truncated: no rows are named.
    Truncate {
        /// Their OIDs.
        relations: Vec<u32>,
    },
    /// Something that carries no row (origin, type); read past.
    Other,
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a pgoutput message could not be decoded: {0}")]
pub struct DecodeError(pub String);

/// Decodes the `XLogData` payload `data`.
pub fn decode(data: &Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader(data.as_ref());
    let tag = r.u8()?;
    Ok(match tag {
        b'R' => {
            let id = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let count = r.u16()?;
            let mut columns = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let flags = r.u8()?;
                let name = r.string()?;
                let type_id = r.u32()?;
                let _modifier = r.u32()?;
                columns.push(RelationColumn {
                    name,
                    key: flags & 1 == 1,
                    type_id,
                });
            }
            Message::Relation(Relation {
                id,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            r.expect(b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'K' => Some((OldKind::Key, r.tuple_then(b'N')?)),
                b'O' => Some((OldKind::Full, r.tuple_then(b'N')?)),
                b'N' => None,
                other => return Err(unexpected("update", other)),
            };
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = match r.u8()? {
                b'K' => OldKind::Key,
                b'O' => OldKind::Full,
                other => return Err(unexpected("delete", other)),
            };
            Message::Delete {
                relation,
                old: (kind, r.tuple()?),
            }
        }
        b'T' => {
            let count = r.u32()?;
            let _options = r.u8()?;
            let relations = (0..count).map(|_| r.u32()).collect::<Result<_, _>>()?;
            Message::Truncate { relations }
        }
        // Origin, Type: nothing a row change needs. Begin, Commit and logical messages are the
        // replication crate's; streamed transactions are not requested (protocol version 1).
        b'O' | b'Y' | b'B' | b'C' | b'M' => Message::Other,
        other => return Err(unexpected("message", other)),
    })
}

fn unexpected(what: &str, byte: u8) -> DecodeError {
    DecodeError(format!("unexpected byte {:?} in a {what}", byte as char))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError(format!(
                "truncated: {n} bytes wanted, {} left",
                self.0.len()
            )));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn expect(&mut self, byte: u8) -> Result<(), DecodeError> {
        match self.u8()? {
            b if b == byte => Ok(()),
            other => Err(unexpected("tuple marker", other)),
        }
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| DecodeError("a name without its terminating zero".into()))?;
        let text = String::from_utf8(self.0[..end].to_vec())
            .map_err(|_| DecodeError("a name that is not UTF-8".into()))?;
        self.0 = &self.0[end + 1..];
        Ok(text)
    }

    fn tuple_then(&mut self, marker: u8) -> Result<Vec<Datum>, DecodeError> {
        let tuple = self.tuple()?;
        self.expect(marker)?;
        Ok(tuple)
    }

    fn tuple(&mut self) -> Result<Vec<Datum>, DecodeError> {
        let count = self.u16()?;
        let mut values = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            values.push(match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let text = String::from_utf8(self.take(len)?.to_vec())
                        .map_err(|_| DecodeError("a text value that is not UTF-8".into()))?;
                    Datum::Text(text)
                }
                // Binary values are never requested.
                other => return Err(unexpected("column value", other)),
            });
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16384u32.to_be_bytes());
        m.extend(b"public\0orders\0");
        m.push(b'f');
        m.extend(2u16.to_be_bytes());
        for (flags, name, ty) in [(1u8, "id", 20u32), (0, "total", 1700)] {
            m.push(flags);
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(ty.to_be_bytes());
            m.extend((-1i32).to_be_bytes());
        }
        m
    }

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut t = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => t.push(b'n'),
                Some("\u{0}") => t.push(b'u'),
                Some(text) => {
                    t.push(b't');
                    t.extend((text.len() as u32).to_be_bytes());
                    t.extend(text.as_bytes());
                }
            }
        }
        t
    }

    #[test]
    fn a_relation_names_its_columns_and_key() {
        let Message::Relation(r) = decode(&Bytes::from(relation())).unwrap() else {
            panic!("a relation");
        };
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str()),
            ("public", "orders")
        );
        assert_eq!(r.replica_identity, b'f');
        assert!(r.columns[0].key && !r.columns[1].key);
        assert_eq!(r.columns[1].type_id, 1700);
    }

    #[test]
    fn an_update_with_a_full_old_row_and_an_unchanged_toasted_value_decodes_both_tuples() {
        let mut m = vec![b'U'];
        m.extend(16384u32.to_be_bytes());
        m.push(b'O');
        m.extend(tuple(&[Some("1"), Some("5.00")]));
        m.push(b'N');
        m.extend(tuple(&[Some("1"), Some("\u{0}")]));
        let decoded = decode(&Bytes::from(m)).unwrap();
        assert_eq!(
            decoded,
            Message::Update {
                relation: 16384,
                old: Some((
                    OldKind::Full,
                    vec![Datum::Text("1".into()), Datum::Text("5.00".into())]
                )),
                new: vec![Datum::Text("1".into()), Datum::Unchanged],
            }
        );
    }

    #[test]
    fn inserts_deletes_and_truncates_decode_and_garbage_is_an_error() {
        let mut insert = vec![b'I'];
        insert.extend(7u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(tuple(&[Some("2"), None]));
        assert!(matches!(
            decode(&Bytes::from(insert)).unwrap(),
            Message::Insert { relation: 7, ref new } if new[1] == Datum::Null
        ));
        let mut delete = vec![b'D'];
        delete.extend(7u32.to_be_bytes());
        delete.push(b'K');
        delete.extend(tuple(&[Some("2"), None]));
        assert!(matches!(
            decode(&Bytes::from(delete)).unwrap(),
            Message::Delete {
                old: (OldKind::Key, _),
                ..
            }
        ));
        let mut truncate = vec![b'T'];
        truncate.extend(2u32.to_be_bytes());
        truncate.push(0);
        truncate.extend(7u32.to_be_bytes());
        truncate.extend(8u32.to_be_bytes());
        assert_eq!(
            decode(&Bytes::from(truncate)).unwrap(),
            Message::Truncate {
                relations: vec![7, 8]
            }
        );
        assert!(decode(&Bytes::from_static(b"I\0\0")).is_err());
        assert!(decode(&Bytes::from_static(b"Z")).is_err());
    }
}
