"""The stored data and the domain rules that guard it: signing, counting, dedup, visibility."""

from .audit import CountDifference, count_differences, repair_counts
from .comments import (
    Commented,
    Moderation,
    add_comment,
    comment_changes,
    last_comment_sequence,
    moderate_comment,
    moderation_queue,
    report_comment,
)
from .database import activate, open_database, ping, tortoise_config
from .demo import DEMO_SLUG, load_demo
from .errors import Problem, RefusalCode, Refused
from .petitions import (
    create_petition,
    find_petition,
    published_comments,
    update_petition,
    visible_comments,
    visible_petitions,
    visible_signatures,
    with_status,
)
from .signing import SignatureFields, Signed, sign, signatures_after
from .tables import (
    ApiToken,
    Comment,
    CommentChange,
    CommentReport,
    CommentStatus,
    OutboxMail,
    Petition,
    PetitionStatus,
    Signature,
    SignatureStatus,
    TokenRole,
)
from .text import KEEP, public_name
from .writer import SignatureWriter, Stopped

__all__ = [
    "DEMO_SLUG",
    "KEEP",
    "ApiToken",
    "OutboxMail",
    "SignatureStatus",
    "TokenRole",
    "Comment",
    "CommentChange",
    "CommentReport",
    "CountDifference",
    "CommentStatus",
    "Commented",
    "Moderation",
    "Petition",
    "PetitionStatus",
    "Problem",
    "RefusalCode",
    "Refused",
    "Signature",
    "SignatureFields",
    "SignatureWriter",
    "Signed",
    "Stopped",
    "activate",
    "add_comment",
    "comment_changes",
    "count_differences",
    "create_petition",
    "find_petition",
    "load_demo",
    "last_comment_sequence",
    "moderate_comment",
    "moderation_queue",
    "open_database",
    "ping",
    "public_name",
    "repair_counts",
    "report_comment",
    "sign",
    "signatures_after",
    "tortoise_config",
    "update_petition",
    "published_comments",
    "visible_comments",
    "visible_petitions",
    "visible_signatures",
    "with_status",
]
