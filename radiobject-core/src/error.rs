//! The crate's error type.

use crate::dtype::Datatype;
pub use crate::ffi::TdbError;
use crate::ffi::{self, ObjectType};

/// Everything that can go wrong in `radiobject-core`.
///
/// Variants carry structured fields (URI, shapes, types) rather than preformatted strings so that
/// bindings can map them to precise exception types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing exists at the URI.
    #[error("no {expected} at {uri}")]
    NotFound {
        /// The URI that was looked up.
        uri: String,
        /// What the caller wanted there ("array", "group", "volume", ...).
        expected: &'static str,
    },

    /// Something exists at the URI, but of another kind.
    #[error("{uri} is a TileDB {found}, not a {expected}")]
    WrongObjectType {
        /// The URI.
        uri: String,
        /// What the caller wanted.
        expected: &'static str,
        /// What is there.
        found: &'static str,
    },

    /// The target of a create already exists; nothing was written.
    #[error("{uri} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The URI.
        uri: String,
    },

    /// A shape is invalid or does not match (2D/5D input, zero-sized axes, size mismatch...).
    #[error("{message}")]
    Shape {
        /// What is wrong, with the shapes involved.
        message: String,
    },

    /// A region or index lies outside the volume, or selects nothing.
    #[error("{message}")]
    Region {
        /// What is wrong, with the region and the shape.
        message: String,
    },

    /// Data of one element type was given where another is stored.
    #[error("dtype mismatch for {uri}: the volume stores {expected}, got {found}")]
    Dtype {
        /// The volume.
        uri: String,
        /// Stored type.
        expected: Datatype,
        /// Given type.
        found: Datatype,
    },

    /// An element type that volumes cannot hold.
    #[error("unsupported dtype {0}: volumes hold int8..int64, uint8..uint64, float32 or float64")]
    UnsupportedDtype(String),

    /// Identifiers that collide or do not line up (duplicate obs_id, subjects missing from
    /// obs_meta, collections of different subjects, ...).
    #[error("{0}")]
    Alignment(String),

    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// An invalid argument that is neither a shape nor a configuration problem.
    #[error("{0}")]
    Invalid(String),

    /// A value that does not fit a column's stored type, or a column that cannot be stored.
    #[error("{0}")]
    Schema(String),

    /// The array exists but is not laid out as a volume (sparse, no numeric attribute, ...).
    #[error("{uri} is not a volume array: {reason}")]
    NotAVolume {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },

    /// A size decided by the input (a region, a batch, a volume) could not be allocated.
    #[error("cannot allocate {bytes} bytes for {what}: not enough memory")]
    OutOfMemory {
        /// What the memory was for.
        what: String,
        /// Bytes requested.
        bytes: u64,
    },

    /// Reading one item of a training batch failed.
    #[error("item {index} ({uri}): {source}")]
    Item {
        /// Index of the item in its dataset.
        index: u64,
        /// The volume it reads.
        uri: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },

    /// Stored data failed to decode: a truncated, corrupted or inconsistent tile or metadata file.
    #[error("corrupt data in {uri}: {detail}")]
    Corrupt {
        /// The array.
        uri: String,
        /// Which tile or file, and what is wrong.
        detail: String,
    },

    /// Reading stored bytes failed (file system or object store).
    #[error("reading {uri} failed: {detail}")]
    Io {
        /// The array.
        uri: String,
        /// The object and what the storage said.
        detail: String,
    },

    /// Another writer holds the dataset's write lock (see [`crate::lock`]); nothing was written.
    #[error("{uri} is being written by {owner} (lock taken {age} ago); {cure}")]
    Locked {
        /// The dataset.
        uri: String,
        /// Who holds the lock: operation, host and pid.
        owner: String,
        /// How long ago it was taken (`"3m12s"`).
        age: String,
        /// What to do: wait, retry, or break a stale lock.
        cure: String,
    },

    /// The work was interrupted (Ctrl-C, see [`crate::cancel`]); what it completed is kept. The
    /// message says what stopped and what was kept.
    #[error("interrupted: {0}")]
    Interrupted(String),

    /// A TileDB operation failed.
    #[error("TileDB {op} failed for {uri}: {source}")]
    Storage {
        /// The operation ("open", "read", "write", "create", ...).
        op: &'static str,
        /// The URI involved.
        uri: String,
        /// TileDB's message.
        #[source]
        source: TdbError,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Storage`] for `op` on `uri`.
    pub fn storage(op: &'static str, uri: impl Into<String>, source: TdbError) -> Error {
        Error::Storage { op, uri: uri.into(), source }
    }

    /// The object (array, group, dataset) the error is about, when it names one.
    pub fn uri(&self) -> Option<&str> {
        match self {
            Error::NotFound { uri, .. }
            | Error::WrongObjectType { uri, .. }
            | Error::AlreadyExists { uri }
            | Error::Dtype { uri, .. }
            | Error::NotAVolume { uri, .. }
            | Error::Item { uri, .. }
            | Error::Corrupt { uri, .. }
            | Error::Io { uri, .. }
            | Error::Locked { uri, .. }
            | Error::Storage { uri, .. } => Some(uri),
            _ => None,
        }
    }

    /// The operation that failed, when known (`"open"`, `"read"`, `"write"`, ...).
    pub fn op(&self) -> Option<&str> {
        match self {
            Error::Storage { op, .. } => Some(op),
            Error::Corrupt { .. } | Error::Io { .. } => Some("read"),
            Error::Locked { .. } | Error::AlreadyExists { .. } => Some("write"),
            Error::NotFound { .. } | Error::WrongObjectType { .. } | Error::NotAVolume { .. } => Some("open"),
            Error::Item { source, .. } => source.op(),
            _ => None,
        }
    }

    /// What a failed open of the TileDB object at `uri` means, decided in this one place from what
    /// is actually there: [`Error::NotFound`] when nothing is, [`Error::WrongObjectType`] when an
    /// object of the other kind is, else [`Error::Storage`] carrying TileDB's message `e`.
    ///
    /// `want` is the kind that was opened (array or group), `expected` names it for the caller
    /// ("collection", "volume array", ...) and `missing` is what a [`Error::NotFound`] says is
    /// missing (usually `expected`).
    pub(crate) fn open_failed(
        tdb: &ffi::Ctx,
        uri: &str,
        want: ObjectType,
        expected: &'static str,
        missing: &'static str,
        e: TdbError,
    ) -> Error {
        match tdb.object_type(uri) {
            Ok(ObjectType::Invalid) => Error::NotFound { uri: uri.to_owned(), expected: missing },
            Ok(found) if found != want => Error::WrongObjectType {
                uri: uri.to_owned(),
                expected,
                found: if found == ObjectType::Array { "array" } else { "group" },
            },
            _ => Error::storage("open", uri, e),
        }
    }

    pub(crate) fn shape(message: impl Into<String>) -> Error {
        Error::Shape { message: message.into() }
    }

    pub(crate) fn region(message: impl Into<String>) -> Error {
        Error::Region { message: message.into() }
    }
}

/// Adds the operation and URI to a raw TileDB error.
pub(crate) trait StorageContext<T> {
    fn at(self, op: &'static str, uri: &str) -> Result<T>;
}

impl<T> StorageContext<T> for std::result::Result<T, TdbError> {
    fn at(self, op: &'static str, uri: &str) -> Result<T> {
        self.map_err(|e| Error::storage(op, uri, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile if `Error` stops being `Send + Sync` (errors cross threads in batch reads).
    #[test]
    fn error_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
    }
}
