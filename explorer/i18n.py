"""The app in two languages: English, in which the code is written, and Simplified Chinese, in the words of
动手学深度学习 (docs/glossary.md), where most of the chapter's readers meet it.

Every string a visitor reads goes through `_()`. As with gettext, the English text is its own key, so the
code reads as before and a string with no translation yet shows in English; `explorer/locale/zh.json` holds
the Chinese, and a test finds every `_()` of the code in it. The language is set once per script run
(`use`) in a context variable, so a chart title made deep in the views speaks the page's language without
being handed it. Names from the book's code (`vgg_block`, `Residual`, `Conv2d`) and numbers stay as they are.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

LANGUAGES = {"en": "English", "zh": "中文"}
CATALOGS = Path(__file__).with_name("locale")

_language: contextvars.ContextVar[str] = contextvars.ContextVar("explorer_language", default="en")


def use(language: str) -> str:
    """Speak `language` (en or zh; anything else is English) from now on in this thread; returns it."""
    language = language if language in LANGUAGES else "en"
    _language.set(language)
    return language


def current() -> str:
    return _language.get()


@functools.cache
def catalog(language: str) -> dict[str, str]:
    """English text -> its translation."""
    path = CATALOGS / f"{language}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _(text: str) -> str:
    """`text` in the current language (English when it has no translation)."""
    language = _language.get()
    if language == "en":
        return text
    return catalog(language).get(text, text)


class Key(str):
    """Words kept untranslated now, to be said later in the language of whoever reads them."""


def plural(n: int, one: str, many: str, **values: object) -> str:
    """The sentence for one thing or for `n` of them, each a whole catalog key (Chinese has one form, English
    two), with `n` and `values` filled in: both marked N_ where they are written."""
    return _(one if n == 1 else many).format(n=n, **values)


def N_(text: str) -> Key:
    """Marks `text` as a catalog key without translating it (gettext's no-op), for an error's values: its
    text() says a Key in the reader's language and any other value (what a visitor typed) as it is."""
    return Key(text)


def say(template: str, values: Mapping[str, object], translate: Callable[[str], str] = _) -> str:
    """`template` in the current language, filled in with `values`, the Keys among them said in it too (and
    filled in from the same values: "its loss stayed at chance, ln {classes} = {chance:.3f}"); without
    values, the template as written (braces and all). `translate=str` says it in English, as written."""
    if not values:
        return translate(template)
    return translate(template).format(**{k: translate(v).format(**values) if isinstance(v, Key) else v
                                         for k, v in values.items()})


def keep(template: str, /, **values: object) -> str:
    """A message to store (a run's error or warning), kept as its template and values so that it is read
    later in the reader's language (`told`)."""
    keys = [k for k, v in values.items() if isinstance(v, Key)]
    return json.dumps({"said": template, "values": values, "keys": keys}, ensure_ascii=False, default=str)


def told(stored: str | None) -> str:
    """A stored message in the current language: one kept by `keep`, else the text as it was stored."""
    try:
        kept = json.loads(stored or "")
    except ValueError:
        return stored or ""
    if not isinstance(kept, dict) or "said" not in kept:
        return stored or ""
    keys = set(kept.get("keys", ()))
    return say(kept["said"], {k: Key(v) if k in keys else v for k, v in kept.get("values", {}).items()})


def said_name(name: str) -> str:
    """A run's name in the current language where the app gave it (a lesson's pair: a section number and a
    catalog label, "7.6 34 layers, plain", stored in English), else exactly as its owner typed it: only a whole
    catalog string is ever replaced, never formatted."""
    section, _sep, rest = name.partition(" ")
    if rest in catalog("zh") and section.replace(".", "", 1).isdigit() and "." in section:
        return f"{section} {_(rest)}"
    return name


def from_locale(locale: str | None) -> str:
    """The language a browser's or a shell's locale asks for: zh for any Chinese (zh-CN, zh_TW.UTF-8)."""
    return "zh" if (locale or "").lower().replace("_", "-").startswith("zh") else "en"


def for_cli() -> str:
    """The CLI speaks English unless LANG (or LC_ALL) asks for Chinese."""
    return use(from_locale(os.environ.get("LC_ALL") or os.environ.get("LANG")))


__all__ = ["LANGUAGES", "Key", "N_", "_", "catalog", "current", "for_cli", "from_locale", "keep", "said_name", "say",
           "told", "use"]
