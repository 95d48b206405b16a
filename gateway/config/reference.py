"""The configuration reference as Markdown, from the same table the loader reads.

``python -m gateway.config.reference`` prints it; README.md embeds it between
``<!-- config-reference -->`` markers and a test keeps the two identical.
"""

from __future__ import annotations

from gateway.config.keys import ARRAYS, ENV_ALIASES, TABLES, env_name

__all__ = ("render_reference",)


def _heading(table: tuple[str, ...], array: bool) -> str:
    name = ".".join(table)
    return f"[[{name}]]" if array else f"[{name}]"


def render_reference() -> str:
    aliases = {path: name for name, path in ENV_ALIASES.items()}
    lines: list[str] = []
    groups = [(table, keys, False) for table, keys in TABLES.items()]
    groups += [(table, keys, True) for table, keys in ARRAYS.items()]
    for table, keys, array in groups:
        lines.append(f"**`{_heading(table, array)}`**")
        lines.append("")
        lines.append("| key | meaning | default | environment |")
        lines.append("| --- | --- | --- | --- |")
        for name, key in keys.items():
            if array:
                path = (table[0], 0, name) if len(table) == 1 else None
                env = aliases.get(path, "") if path else ""
                env = f"`{env}` (first listener)" if env else ""
            else:
                env = f"`{env_name(table, name)}`"
                alias = aliases.get((*table, name))
                if alias:
                    env += f", `{alias}`"
            lines.append(f"| `{name}` | {key.help} | {key.default} | {env} |")
        lines.append("")
    lines.append(
        "**`[storage.options]`**: passed to URL-rooted backends as they are (S3: "
        "`endpoint_url`, `region_name`, `aws_access_key_id`, `aws_secret_access_key`, "
        "`addressing_style`, `part_size`, `parts_in_flight`, `checksum_algorithm`, "
        "`max_attempts`, `connect_timeout`, `read_timeout`, `metadata_cache_ttl`...; fsspec: the "
        "filesystem's "
        "own arguments and `fsspec_*` tuning). A sub-table named by a scheme or root prefix, "
        "`[storage.options.\"s3://bucket/alice\"]`, applies to the roots it prefixes."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_reference())
