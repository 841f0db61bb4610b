//! TileDB groups as the dataset layout uses them: read members and metadata in one open, change
//! them in one write session.

use std::collections::BTreeMap;

use crate::context::Context;
use crate::error::{Error, Result, StorageContext};
use crate::ffi::{self, Mode, ObjectType};
use crate::metadata::MetaValue;

/// Kind of a group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// An array.
    Array,
    /// A group.
    Group,
    /// Unknown (dangling member).
    Unknown,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member name.
    pub name: String,
    /// URI as TileDB resolves it.
    pub uri: String,
    /// Array or group.
    pub kind: MemberKind,
}

/// Members and metadata of a group, read in one open.
#[derive(Debug, Clone, Default)]
pub struct GroupInfo {
    /// Members in TileDB's order.
    pub members: Vec<GroupMember>,
    /// Group metadata.
    pub metadata: BTreeMap<String, MetaValue>,
}

impl GroupInfo {
    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&GroupMember> {
        self.members.iter().find(|m| m.name == name)
    }

    /// An integer metadata value.
    pub fn meta_int(&self, key: &str) -> Option<i64> {
        self.metadata.get(key).and_then(MetaValue::as_int)
    }

    /// A string metadata value.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(MetaValue::as_str)
    }
}

/// Reads a group; `what` names it in errors ("RadiObject", "collection", ...).
pub fn read_group(ctx: &Context, uri: &str, what: &'static str) -> Result<GroupInfo> {
    let g = ffi::Group::open(ctx.tdb(), uri, Mode::Read)
        .map_err(|e| Error::open_failed(ctx.tdb(), uri, ObjectType::Group, what, what, e))?;
    let members = g
        .members()
        .at("list members", uri)?
        .into_iter()
        .map(|m| GroupMember {
            name: m.name,
            uri: m.uri,
            kind: match m.kind {
                ObjectType::Array => MemberKind::Array,
                ObjectType::Group => MemberKind::Group,
                ObjectType::Invalid => MemberKind::Unknown,
            },
        })
        .collect();
    let metadata = g.metadata().at("read metadata", uri)?;
    g.close().at("close", uri)?;
    Ok(GroupInfo { members, metadata })
}

/// Creates an empty group; refuses if anything exists at `uri` (a TileDB object, a file, or a
/// non-empty directory or S3 prefix), so that rolling back a failed write can never remove data
/// this library did not write.
pub fn create_group(ctx: &Context, uri: &str) -> Result<()> {
    ensure_vacant(ctx, uri)?;
    ffi::Group::create(ctx.tdb(), uri).at("create group", uri)
}

/// Fails with [`Error::AlreadyExists`] unless nothing (or an empty directory) is at `uri`.
pub fn ensure_vacant(ctx: &Context, uri: &str) -> Result<()> {
    if ctx.tdb().object_type(uri).at("create", uri)? != ObjectType::Invalid {
        return Err(Error::AlreadyExists { uri: uri.to_owned() });
    }
    let vfs = ctx.vfs()?;
    // the write lock of a dataset being created sits in its root (see `crate::lock`)
    let occupied = vfs.is_file(uri).unwrap_or(false)
        || (vfs.is_dir(uri).unwrap_or(false)
            && vfs.ls(uri).unwrap_or_default().iter().any(|e| leaf(e) != crate::lock::LOCK_NAME));
    if occupied {
        return Err(Error::AlreadyExists { uri: uri.to_owned() });
    }
    Ok(())
}

/// Changes to apply to a group in one write session.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    /// Members to add: `(path relative to the group, name)`.
    pub add: Vec<(String, String)>,
    /// Members to remove, by name.
    pub remove: Vec<String>,
    /// Metadata to write.
    pub put: Vec<(String, MetaValue)>,
    /// Metadata keys to delete.
    pub delete: Vec<String>,
}

impl GroupUpdate {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.put.is_empty() && self.delete.is_empty()
    }
}

/// Applies `update` to the group at `uri` in one open/close (one group write).
pub fn update_group(ctx: &Context, uri: &str, update: &GroupUpdate) -> Result<()> {
    if update.is_empty() {
        return Ok(());
    }
    let mut g = ffi::Group::open(ctx.tdb(), uri, Mode::Write).at("open for writing", uri)?;
    for name in &update.remove {
        g.remove_member(name).at("remove member", uri)?;
    }
    for (path, name) in &update.add {
        g.add_member(path, true, name).at("add member", uri)?;
    }
    for k in &update.delete {
        g.delete_metadata(k).at("delete metadata", uri)?;
    }
    for (k, v) in &update.put {
        g.put_metadata(k, v).at("write metadata", uri)?;
    }
    g.close().at("close", uri)
}

/// Last component of a local path or URI (`a/b/c/` → `c`).
pub fn leaf(uri: &str) -> &str {
    uri.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
}

/// `{base}/{child}` for local paths and URIs.
pub fn join(base: &str, child: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), child)
}
