"""`hftlab report` on a real sweep whose user strings are markup: an experiment name, dataset ids (swept,
so they are parameter values too), a venue and a symbol holding ``<script>``, ``"``, ``&`` and tags. The
HTML shows each of them as text: no tag, attribute or entity comes from user input. A ``$x^$`` in a
parameter value is drawn as given in the figures (it is not mathtext, which would stop the report)."""

from __future__ import annotations

import re
import shutil
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.run.test_run_e2e import hftlab, make_project

EXPERIMENT = '<script>alert("exp&")'  # no "/": an experiment name is a directory name
DATASET_1 = '<script>alert("d1&")'
DATASET_2 = 'd2"&<i>$x^$'
SYMBOL, VENUE = '<script>alert("sym&")', '<b onload="v&">'
RUN = '<script>alert("run&")'  # a run directory renamed by hand, reported without a manifest
SYNTH = ["data", "synth", "--days", "0.01", "--events-per-second", "40", "--symbol", SYMBOL, "--venue", VENUE]
#: Every tag and attribute the report writes itself.
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "table", "tr", "th", "td"}
TAGS |= {"figure", "img", "figcaption", "ul", "li", "small", "div", "details", "summary", "dl", "dt", "dd", "h4", "b"}
TAGS |= {"script"}  # Bokeh's library and the figures' data, counted below
ATTRIBUTES = {"charset", "class", "alt", "src", "id", "data-root-id", "style", "open"}


def quoted(value: str) -> str:
    """A Hydra override value as a quoted string (the characters above are not allowed unquoted)."""
    return "'" + value + "'"


class Page(HTMLParser):
    """The tags, attributes and text of a page, entities decoded."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []
        self.scripts = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.scripts += tag == "script"
        self.attributes |= {name for name, _ in attrs}

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep's report and, beside it, the report of one of its runs copied under the name RUN."""
    project = make_project(tmp_path_factory.mktemp("escaping") / "p", [*SYNTH, "--seed", "4", "--id", DATASET_1])
    hftlab(project, "--root", str(project / "data" / "canonical"), *SYNTH, "--seed", "5", "--id", DATASET_2)
    hftlab(
        project,
        "run",
        "-m",
        f"experiment_name={quoted(EXPERIMENT)}",
        f"dataset.id={quoted(DATASET_1)},{quoted(DATASET_2)}",
        "strategy.params.half_spread=0.1,0.3",
    )
    runs = project / "results" / EXPERIMENT / "runs"
    single = project / "results" / f"single {EXPERIMENT}" / "runs"
    single.mkdir(parents=True)
    shutil.copytree(next(p for p in sorted(runs.iterdir()) if p.is_dir()), single / RUN)
    out = hftlab(project, "report", "results", "--out", "reports")
    assert f"reports/{EXPERIMENT}/index.html" in out.stdout
    return project / "reports"


@pytest.mark.parametrize("experiment", [EXPERIMENT, f"single {EXPERIMENT}"])
def test_no_tag_or_attribute_comes_from_user_input(reported: Path, experiment: str) -> None:
    """The page holds only the report's own tags and attributes; its scripts are Bokeh's library and one
    of figure data (Bokeh html-escapes the strings in it: nothing there closes the script)."""
    from hftlab.analysis.interactive import resources

    text = (reported / experiment / "index.html").read_text()
    page = Page(text)
    assert page.tags <= TAGS, page.tags - TAGS
    assert page.attributes <= ATTRIBUTES, page.attributes - ATTRIBUTES
    assert Page(resources()).scripts + 1 == page.scripts
    outside = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)  # the library holds "<i>" itself
    assert "<i>" not in outside and "<b " not in outside and 'alert("' not in outside


def test_user_strings_are_escaped_and_shown_as_text(reported: Path) -> None:
    """Experiment name, dataset ids (as dataset and as swept parameter values), venue and symbol appear
    html-escaped (<, >, &, ") in the source and verbatim in the rendered text."""
    text = (reported / EXPERIMENT / "index.html").read_text()
    rendered = "".join(Page(text).text)
    for value in (EXPERIMENT, DATASET_1, DATASET_2):
        assert value not in text
        assert escape(value) in text
        assert value in rendered
    assert f"<title>{escape(EXPERIMENT)}</title>" in text
    assert f"<h1>Experiment {escape(EXPERIMENT)}</h1>" in text
    assert "dataset.id=" in rendered  # the grid line
    assert f"{DATASET_1} version " in rendered or f"{DATASET_2} version " in rendered  # a run header's dataset
    assert f"{VENUE} {SYMBOL}, linear" in rendered  # the header: the dataset's instrument
    assert escape(VENUE) in text and escape(SYMBOL) in text


def test_a_renamed_run_directory_is_escaped(reported: Path) -> None:
    """Without a manifest, run ids are directory names: the run's heading and header escape them."""
    text = (reported / f"single {EXPERIMENT}" / "index.html").read_text()
    assert f"<summary>Run {escape(RUN)}: net_pnl " in text and f"<dt>run</dt><dd><code>{escape(RUN)}</code>" in text
    assert RUN in "".join(Page(text).text)


def test_the_sweep_figures_are_drawn_with_dollar_signs_in_parameter_values(reported: Path) -> None:
    """DATASET_2 holds "$x^$" (invalid mathtext): the sweep figures exist; the report did not stop."""
    folder = reported / EXPERIMENT
    for name in ("sensitivity.png", "heatmap.png"):
        assert (folder / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
