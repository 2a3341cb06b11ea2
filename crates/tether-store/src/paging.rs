//! Pages of list results.

/// Page size when the caller gives none.
pub const DEFAULT_LIMIT: u32 = 30;
/// Largest page size; larger requests are clamped to it.
pub const MAX_LIMIT: u32 = 1000;

/// One page of a list, with the total count of matching rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    /// Zero-based page index.
    pub page: u32,
    /// The page size actually used (after defaulting and clamping).
    pub limit: u32,
}

/// Paging and search for simple lists (secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Zero-based page index.
    pub page: u32,
    /// Page size: default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`], at least 1.
    pub limit: Option<u32>,
    /// Case-insensitive substring of the name or the identifier.
    pub search: Option<String>,
}

pub(crate) fn effective_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

pub(crate) fn offset(page: u32, limit: u32) -> i64 {
    i64::from(page) * i64::from(limit)
}
