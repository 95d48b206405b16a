"""The FTP protocol without I/O: parsing and formatting as pure functions.

Everything the server or client needs from here is re-exported; the submodules stay
importable on their own for tests.
"""

from gateway.protocol.addresses import (
    UnsupportedProtocol,
    format_eprt_argument,
    format_epsv,
    format_pasv_reply_address,
    format_port_argument,
    parse_eprt,
    parse_epsv_arg,
    parse_port,
)
from gateway.protocol.commands import (
    COMMANDS,
    MAX_LINE_LENGTH,
    CommandInfo,
    decode_line,
    encode_text,
    feat_lines,
    help_lines,
    is_verb,
    parse_command,
    strip_telnet,
)
from gateway.protocol.listing import (
    DEFAULT_MLSX_FACTS,
    format_list_line,
    format_mdtm,
    format_mlsx_line,
    format_nlst_line,
    listing_name,
    mlsx_perm,
    parse_mdtm,
    strip_list_flags,
)
from gateway.protocol.paths import ROOT, is_within, name_allowed, resolve_virtual, virtual_to_real
from gateway.protocol.replies import encode_reply, format_reply, one_line, quote_path
from gateway.protocol.types import parse_mode, parse_rest, parse_stru, parse_type

__all__ = (
    # commands
    "COMMANDS",
    "MAX_LINE_LENGTH",
    "CommandInfo",
    "decode_line",
    "encode_text",
    "feat_lines",
    "help_lines",
    "is_verb",
    "parse_command",
    "strip_telnet",
    # replies
    "encode_reply",
    "format_reply",
    "one_line",
    "quote_path",
    # listing
    "DEFAULT_MLSX_FACTS",
    "format_list_line",
    "format_mdtm",
    "format_mlsx_line",
    "format_nlst_line",
    "listing_name",
    "mlsx_perm",
    "parse_mdtm",
    "strip_list_flags",
    # paths
    "ROOT",
    "is_within",
    "name_allowed",
    "resolve_virtual",
    "virtual_to_real",
    # addresses
    "UnsupportedProtocol",
    "format_eprt_argument",
    "format_epsv",
    "format_pasv_reply_address",
    "format_port_argument",
    "parse_eprt",
    "parse_epsv_arg",
    "parse_port",
    # types
    "parse_mode",
    "parse_rest",
    "parse_stru",
    "parse_type",
)
