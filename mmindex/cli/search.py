"""Searching: search, concepts, feedback and saved queries. The requests that the HTTP API takes too (search,
concepts, feedback) have their options made from mmindex/search/requests.py."""

from __future__ import annotations

import json

import click

from mmindex.cli.common import emit_hits, index_option, main, open_engine
from mmindex.cli.options import request_options, request_values
from mmindex.errors import QueryError
from mmindex.search.requests import ConceptsRequest, FeedbackRequest, SearchRequest


class _StepsInOrder(click.Command):
    """`--then-text WORDS` is `--then text:WORDS` and `--then-like ID` is `--then like:ID`, rewritten before
    parsing: click collects each option's values apart, and a temporal query's steps keep their order."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out, it = [], iter(args)
        for arg in it:
            if arg == "--":
                out += [arg, *it]
                break
            flag, eq, value = arg.partition("=")
            if flag in ("--then-text", "--then-like"):
                if not eq:
                    value = next(it, None)
                    if value is None:
                        raise click.UsageError(f"Option '{flag}' requires an argument.", ctx)
                arg = f"--then={flag.rsplit('-', 1)[1]}:{value}"
            out.append(arg)
        return super().parse_args(ctx, out)


@main.command(cls=_StepsInOrder)
@index_option
@request_options(SearchRequest)  # --concept, --like, --text, -k, ..., --then, --within, --group: GET /api/search's
@click.option("--then-text", multiple=True, expose_value=False, metavar="WORDS",
              help='A step that follows, by free text: --then "text:WORDS".')
@click.option("--then-like", multiple=True, expose_value=False, metavar="ID",
              help='A step that follows, by example: --then "like:ID".')
@click.option("--text-encoder", default=None, help="minilm (default), word2vec:PATH or clip:ARCH@WEIGHTS.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {\"hits\": [...]} (--format json).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "trec"]), default=None,
              help="table (default), json, or trec: trec_eval run lines `TOPIC Q0 DOC RANK SCORE RUN`.")
@click.option("--run-name", default="mmindex", show_default=True, help="--format trec: the run's name (last field).")
@click.option("--topic", default=None, help="--format trec: the topic id (first field; default: the name of the "
              "one --concept, as `judgments export --format qrels` writes it).")
@click.option("--vector-index", default=None, metavar="flat|hnsw|ivfpq|FACTORY",
              help="Fail unless the index was built with this vector index.")
def search(index, text_encoder, as_json, fmt, run_name, topic, vector_index, **options) -> None:
    """Search by concept, free text and/or example; criteria are fused. With --then, shots followed in the same
    video by shots matching each step, in order, each within --within seconds."""
    from mmindex import Engine  # deferred: `mmindex --help` stays fast

    try:
        request = SearchRequest(**request_values(SearchRequest, options))
    except QueryError as exc:  # --then without a first criterion, a --within that is not a positive number
        raise click.UsageError(str(exc)) from None
    fmt = _output_format(fmt, as_json)
    if fmt == "trec":
        topic = _trec_topic(topic, request)
        if not run_name or any(c.isspace() for c in run_name):
            raise click.UsageError(f"--run-name must be one word, not {run_name!r}")
    results = Engine(index, text_encoder=text_encoder, vector_index=vector_index).search(**request.engine_arguments())
    if fmt == "trec":
        emit_trec(results, topic, run_name)
    else:
        emit_hits(results, fmt == "json", request.explain)


def _output_format(fmt: str | None, as_json: bool) -> str:
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} ask for two formats; give one")
    return "json" if as_json else fmt or "table"


def _trec_topic(topic: str | None, request: SearchRequest) -> str:
    """The topic id of a run: the one given, else the single concept's name as a qrels query id."""
    from mmindex.evaluate.judgments import qrels_query  # deferred: `mmindex --help` stays fast

    if topic is None:
        if len(request.concept) != 1 or request.like or request.text:
            raise click.UsageError("--format trec needs --topic ID unless the query is one --concept")
        topic = qrels_query(request.concept[0])
    if not topic or any(c.isspace() for c in topic):
        raise click.UsageError(f"--topic must be one word (a topic id of the qrels), not {topic!r}")
    return topic


def emit_trec(hits, topic: str, run_name: str) -> None:
    """trec_eval run lines, best first; each document named as qrels name it (`judgments.doc_id`: the path, and a
    video segment's time span), so that `mmindex evaluate-run` and trec_eval match them with judgments."""
    from mmindex.evaluate.judgments import doc_id

    message = getattr(hits, "message", None)
    if message:
        click.echo(f"no hits: {message}", err=True)
    for rank, h in enumerate(hits, 1):
        click.echo(f"{topic} Q0 {doc_id(h.path, h.start, h.end)} {rank} {h.score:.8g} {run_name}")


@main.command()
@request_options(ConceptsRequest)  # TEXT, --limit: GET /api/concepts's q and limit
@index_option
@click.option("--json", "as_json", is_flag=True)
def concepts(index, as_json, **options) -> None:
    """List the concept vocabulary (the index's trained concepts included), or search it by name, synonym or
    WordNet id."""
    request = ConceptsRequest(**request_values(ConceptsRequest, options))
    engine = open_engine(index)
    found = engine.concepts(**request.engine_arguments())  # no index: the ImageNet vocabulary
    # An index's own concepts (applied or taught detectors) come first, marked with their detector's version.
    detectors = {d["name"]: d for d in engine.detectors()} if any(c.source == "trained" for c in found) else {}
    own = {c.id: detectors.get(c.id.split(":")[0]) for c in found if c.source == "trained"}
    if as_json:
        click.echo(json.dumps({"concepts": [
            {"id": c.id, "name": c.name, "synonyms": list(c.synonyms), "source": c.source, "classes": len(c.classes),
             **({"detector": own[c.id]["name"], "kind": own[c.id]["kind"], "version": own[c.id]["version"]}
                if own.get(c.id) else {})} for c in found]}))
        return
    for c in found:
        d = own.get(c.id)
        extra = (f"  [{d['kind']} detector {d['name']!r}, version {d['version']}]" if d else
                 f"  [{len(c.classes)} classes]" if c.source != "imagenet" else "")
        click.echo(f"{c.id}  {', '.join(c.synonyms)}{extra}")
    if not found:
        click.echo(f"no concept matches {request.text!r}", err=True)


@main.command()
@index_option
@request_options(FeedbackRequest)  # --positive, --negative, -k, --explain: POST /api/feedback's body
@click.option("--query", "name", default=None, help="Refine this saved query instead of the last one.")
@click.option("--save", "save_as", default=None, help="Save the refined query under this name.")
@click.option("--json", "as_json", is_flag=True)
def feedback(index, name, save_as, as_json, **options) -> None:
    """Refine the last query with relevance judgments (Rocchio, then a linear classifier)."""
    request = FeedbackRequest(**request_values(FeedbackRequest, options))
    eng = open_engine(index)
    results = eng.feedback(**request.engine_arguments(), name=name)
    if save_as:
        eng.save_query(save_as)
    emit_hits(results, as_json, request.explain)


@main.group()
def saved() -> None:
    """Saved queries: save the last query, list, re-run or delete them."""


@saved.command("save")
@click.argument("name")
@index_option
def saved_save(name, index) -> None:
    """Save the last query (with its feedback) as NAME."""
    spec = open_engine(index).save_query(name)
    click.echo(f"saved {name!r}: {json.dumps(spec.to_dict())}")


@saved.command("list")
@index_option
@click.option("--json", "as_json", is_flag=True)
def saved_list(index, as_json) -> None:
    """List the saved queries."""
    found = {n: s.to_dict() for n, s in open_engine(index).saved_queries().items()}
    if as_json:
        click.echo(json.dumps({"queries": found}))
        return
    for n, s in found.items():
        click.echo(f"{n}: {json.dumps(s)}")


@saved.command("run")
@click.argument("name")
@index_option
@click.option("-k", "k", default=None, type=click.IntRange(1, 100_000))
@click.option("--explain", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def saved_run(name, index, k, explain, as_json) -> None:
    """Run the saved query NAME again."""
    emit_hits(open_engine(index).run_saved(name, k=k, explain=explain), as_json, explain)


@saved.command("delete")
@click.argument("name")
@index_option
def saved_delete(name, index) -> None:
    """Delete the saved query NAME."""
    open_engine(index).delete_saved(name)
    click.echo(f"deleted {name!r}")
