"""Config's declarations as text: `nst-tui fields` and docs/parameters.md.

Both read only `nst_tui.config` (no torch, no textual). The page is committed;
a test fails when it differs from `page()` and names the command that rewrites it.
"""

from __future__ import annotations

from nst_tui.config import PARAMS, Config, toml_value, type_name

REGENERATE = "nst-tui fields --markdown > docs/parameters.md"


def number(value: float) -> str:
    """An int exactly (seed's 2**63 - 1), a float as %g (1e+30)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def allowed(name: str) -> str:
    """The values a field takes, in words: its choices, its range or its rule."""
    p = PARAMS[name]
    if p.choices:
        return " | ".join(p.choices)
    if p.lo is not None and p.hi is not None:
        if p.above:
            return f"> {number(p.lo)}, <= {number(p.hi)}"
        if p.below:
            return f">= {number(p.lo)}, < {number(p.hi)}"
        return f"{number(p.lo)} .. {number(p.hi)}"
    return p.rule or ("true | false" if type_name(name) == "bool" else "")


def rows() -> list[tuple[str, str, str, str, str, str]]:
    """(section, field, type, default as TOML, allowed values, help) in declaration order."""
    defaults = Config().to_dict()
    return [
        (p.section, name, type_name(name), toml_value(defaults[name]), allowed(name), p.help)
        for name, p in PARAMS.items()
    ]


def listing() -> str:
    """`nst-tui fields`: each field on one line, its help on the next, by section."""
    out: list[str] = []
    width = max(len(name) for name in PARAMS)
    last = None
    for section, name, kind, default, values, help_ in rows():
        if section != last:
            out += ["", section] if out else [section]
            last = section
        line = f"  {name:<{width}}  {kind:<11}  {default}"
        out.append(f"{line}  ({values})" if values else line)
        out.append(f"  {'':<{width}}  {help_}")
    return "\n".join(out) + "\n"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def page() -> str:
    """docs/parameters.md: a table per section, every field of Config."""
    out = [
        "# Parameters",
        "",
        f"<!-- Generated from nst_tui/config.py by `{REGENERATE}`: edit the",
        "declarations there, not this page; a test checks the two agree. -->",
        "",
        "Every field of `nst_tui.config.Config`. A preset sets one with a `key = value` line,",
        "`nst-tui run --set key=value` overrides one (the value is TOML; a bare word is read",
        "as a string), and the dashboard's form has a row for each (the layers as toggles).",
        "`nst-tui fields` prints this list in the terminal.",
    ]
    last = None
    for section, name, kind, default, values, help_ in rows():
        if section != last:
            out += ["", f"## {section}", "", "| field | type | default | allowed | help |"]
            out.append("| --- | --- | --- | --- | --- |")
            last = section
        out.append(f"| `{name}` | {kind} | `{cell(default)}` | {cell(values)} | {cell(help_)} |")
    return "\n".join(out) + "\n"
