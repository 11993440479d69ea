"""Issue type names: part of the public contract (CLI, export schema, explorer)."""

IMAGE_ISSUES = (
    "unreadable",
    "exact_duplicate",
    "near_duplicate",
    "dark",
    "bright",
    "blurry",
    "low_information",
    "odd_aspect_ratio",
    "odd_size",
)
ISSUE_TYPES = IMAGE_ISSUES + ("outlier", "label_issue")

EXPORT_COLUMNS = (
    "item_id",
    "path",
    "label",
    "issue",
    "score",
    "severity",
    "suggested_label",
    "group_id",
    "keep",
)


def validate_issue_types(names):
    """Return names unchanged, or raise CuratorError naming the first unknown one."""
    from .errors import CuratorError

    for name in names:
        if name not in ISSUE_TYPES:
            raise CuratorError(
                f"unknown issue type {name!r}; choose from: {', '.join(ISSUE_TYPES)}"
            )
    return list(names)
