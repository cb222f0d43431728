"""The HTML cue sheet's templates: values are escaped, a studio's folder overrides by name, and a
broken studio template is refused with the file and line. Read back with an HTML parser."""

from __future__ import annotations

import copy
from html.parser import HTMLParser

import pytest

from soundscape.reports import render_html
from soundscape.reports.cuesheet import build_cuesheet
from soundscape.rights.ledger import Ledger


class Page(HTMLParser):
    """Every element as (tag, attributes), and every text node whole."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)


@pytest.fixture(scope="module")
def sheet(rendered_episode):
    with Ledger.open(rendered_episode.workspace) as ledger:
        return build_cuesheet(ledger, "S01E03", workspace=rendered_episode.workspace)


def _html(sheet, **options) -> str:
    # images={} skips drawing waveforms: these tests read markup, not pictures.
    return render_html.render(sheet, images={}, **options).decode("utf-8")


def test_markup_in_a_cue_title_is_printed_as_text(sheet):
    hostile = copy.deepcopy(sheet)
    title = '<script>alert("x")</script> Rock & Roll <marquee>'
    hostile.cues[0].title = title
    hostile.cues[0].cue_id = '1M1" onmouseover="alert(1)'
    hostile.production.title = "Tom & Jerry"
    html = _html(hostile)
    page = Page(html)
    assert not {"script", "marquee"} & {tag for tag, _ in page.tags}
    # The title comes back whole, as text, from the cue table and the cue's heading.
    assert page.texts.count(title) == 1  # the table cell holds the title alone
    assert any(title in text for text in page.texts if text.startswith("1. "))
    assert "Music cue sheet · Tom & Jerry S01E03 “The Trench”" in page.texts
    assert "&amp;" in html and "Tom & Jerry" not in html
    # An attribute value cannot be closed from the data: the id comes back as one value.
    ids = [attrs["data-cue-id"] for tag, attrs in page.tags if "data-cue-id" in attrs]
    assert ids[0] == '1M1" onmouseover="alert(1)'
    assert not any("onmouseover" in attrs for _, attrs in page.tags)


def test_the_packaged_templates_give_every_part_of_the_sheet(sheet):
    page = Page(_html(sheet))
    sections = [a["data-cue-id"] for t, a in page.tags if t == "section"]
    assert sections == [c.cue_id for c in sheet.cues]
    assert ("div", {"id": "episode-status"}) in page.tags
    for heading in ("Production", "Cues", "Cue details", "Appendix A · Attributions to credit",
                    "Appendix B · Models and training data", "Appendix C · Ledger checkpoint"):
        assert heading in page.texts
    style = page.texts[page.texts.index("Music cue sheet · Deep Water S01E03 “The Trench”") + 1]
    assert "section.cue" in style  # the packaged stylesheet is inlined


def test_a_studio_template_replaces_the_packaged_one_by_name(sheet, tmp_path):
    (tmp_path / "style.css.j2").write_text("body { background: #123456; }", encoding="utf-8")
    (tmp_path / "cue_table.html.j2").write_text(
        "<h2>Cue list</h2><ol>{% for c in sheet.cues %}<li class=\"studio\">{{ c.title }}</li>"
        "{% endfor %}</ol>", encoding="utf-8")
    page = Page(_html(sheet, template_dir=tmp_path))
    assert "body { background: #123456; }" in page.texts
    assert not any("section.cue" in text for text in page.texts)  # the packaged CSS is gone
    items = [t for t, a in page.tags if a.get("class") == "studio"]
    assert len(items) == len(sheet.cues) and "Cue list" in page.texts
    # The packaged cue table (whose rows link to each cue's details) is gone.
    assert not [a for t, a in page.tags if t == "a" and a.get("href", "").startswith("#cue-")]
    # The parts the studio did not override still come from the package.
    assert [a["data-cue-id"] for t, a in page.tags if t == "section"] == [c.cue_id for c in sheet.cues]


def test_a_studio_page_can_extend_the_packaged_one(sheet, tmp_path):
    (tmp_path / "cuesheet.html.j2").write_text(
        '{% extends "soundscape/cuesheet.html.j2" %}'
        '{% block appendices %}<p id="studio-note">Filed by {{ sheet.production.company }}</p>'
        '{% endblock %}', encoding="utf-8")
    page = Page(_html(sheet, template_dir=tmp_path))
    assert ("p", {"id": "studio-note"}) in page.tags and "Filed by Abyss Films" in page.texts
    assert "Appendix A · Attributions to credit" not in page.texts
    assert "Production" in page.texts and len([t for t, _ in page.tags if t == "section"]) == 3


@pytest.mark.parametrize("name, text, says", [
    ("cue.html.j2", "<p>{% if cue.cleared %}open</p>", "cue.html.j2, line 1"),
    ("production.html.j2", "<h1>{{ sheet.production.no_such_field }}</h1>", "no_such_field"),
    ("cue_table.html.j2", '{% include "missing.html.j2" %}', "missing.html.j2"),
], ids=["syntax", "undefined", "missing-include"])
def test_a_broken_studio_template_is_refused_with_where(sheet, tmp_path, name, text, says):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(render_html.TemplateError, match=says) as caught:
        _html(sheet, template_dir=tmp_path)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2


def test_a_missing_template_folder_is_refused(tmp_path):
    with pytest.raises(render_html.TemplateError, match="does not exist"):
        render_html.load_page(tmp_path / "nowhere")
