"""The book's commands: lessons, lesson, exercises, exercise, and docs (the generated parts of the docs)."""

from __future__ import annotations

import argparse
import json

from explorer.i18n import _


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("lessons", help="the chapter's lessons, one per section, with what was measured")
    s.add_argument("--measure", action="store_true", help="train every lesson's pair on the real data now and "
                                                          "keep the results (minutes per lesson)")
    s.add_argument("--markdown", action="store_true", help="print every lesson's kept measurement as Markdown "
                                                           "(docs/lessons.md's measured part)")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_lessons)
    s = sub.add_parser("lesson", help="one lesson: its claim, comparison, training pair and measured answer")
    s.add_argument("lesson", metavar="NAME", help="a lesson's name or its Chinese-edition section (resnet or 7.6)")
    s.add_argument("--measure", action="store_true", help="train its pair on the real data now and keep the results")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_lesson)

    s = sub.add_parser("exercises", help="the chapter's exercises, both editions, with what answers each")
    s.add_argument("--edition", choices=("zh", "en"), help="one edition's (default: both)")
    s.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                   help="markdown: docs/exercises.md, the coverage table and every exercise")
    s.add_argument("--measure", action="store_true", help="train every setup of the exercises a run answers on the "
                                                          "real data now, with the quick preset, and keep the "
                                                          "results (about half an hour on a 2-core CPU)")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_exercises)
    s = sub.add_parser("exercise", help="one exercise: its question, setups, computed answer and measured runs")
    s.add_argument("exercise", metavar="ID", help="as each edition numbers it: zh-7.6-3 or en-8.6-3")
    s.add_argument("--measure", action="store_true", help="train its setups on the real data now (quick preset) "
                                                          "and keep the results")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_exercise)

    s = sub.add_parser("docs", help="write the docs' generated parts from the data they show (README's exercise "
                                    "coverage, docs/exercises.md, docs/lessons.md's measurements)")
    s.add_argument("--check", action="store_true", help="only say which differ (exit status 1 if any)")
    s.set_defaults(func=cmd_docs)


def cmd_lessons(args: argparse.Namespace) -> int:
    from explorer import lessons

    for lesson in lessons.LESSONS if args.measure or not args.markdown else ():
        if args.measure:
            lessons.save(lesson, lessons.measure(lesson, args.data_dir))
        if args.markdown:
            continue
        kept = lessons.measured(lesson)
        answer = " · ".join(f"{_(r.label)} {r.test_acc:.3f}" for r in kept[1]) if kept else _("not measured yet")
        print(f"{lesson.section} ({lesson.english})  {lesson.name:10s} {_(lesson.title)}: {answer}", flush=True)
    if args.markdown:
        print(lessons.markdown(), end="")
    return 0


def cmd_lesson(args: argparse.Namespace) -> int:

    from explorer import lessons
    from explorer.training.dynamics import STATISTICS

    lesson = lessons.get(args.lesson)
    if args.measure:
        lessons.save(lesson, lessons.measure(lesson, args.data_dir))
    print(_("{section} (English edition {english}) {title}").format(section=lesson.section, english=lesson.english,
                                                                    title=_(lesson.title)))
    print(f"\n{_(lesson.claim)}\n")
    for side in lesson.pair:
        print(_("Train: {label}: {model}, quick preset").format(label=_(side.label), model=side.model)
              + "".join(f", {k}={v}" for k, v in {**side.network, **side.settings}.items()))
    kept = lessons.measured(lesson)
    if kept is None:
        print("\n" + _("Not measured yet: python -m explorer lesson {lesson} --measure").format(lesson=lesson.name))
        return 0
    where, results = kept
    _print_results(_("Measured on the real data ({where}):").format(where=where), results, lessons.verdict(results))
    print("\n" + _("What explains it: {statistic} per layer (python -m explorer dynamics RUN_ID, or the Runs "
                   "page).").format(statistic=_(STATISTICS[lesson.watch])))
    return 0


def _measure(chosen: list, data_dir: str | None) -> None:
    """Train the setups of the chosen exercises that a run answers; a data set that is not here is said and
    its setups left out, the others measured."""
    from explorer import exercise_runs
    from explorer.training.data import DEFAULT_DATASET, DataError, find_data_dir

    todo = exercise_runs.to_measure(chosen)
    for dataset in dict.fromkeys(d for _s, d in todo):
        try:
            find_data_dir(data_dir if dataset == DEFAULT_DATASET else None, dataset)
        except DataError as err:
            print(_("left out, no {dataset} here: {message}").format(dataset=dataset, message=err.text()), flush=True)
            todo = [(s, d) for s, d in todo if d != dataset]
    done = iter(range(1, len(todo) + 1))
    for result in exercise_runs.measure(todo, data_dir, on_start=lambda setup, dataset: print(
            _("training {setup} on {dataset} ({n} of {total})").format(
                setup=" ".join([setup.model, *(f"{k}={v}" for k, v in setup.texts().items())]), dataset=dataset,
                n=next(done), total=len(todo)), flush=True)):
        print(f"  {_('test acc')} {result.test_acc:.3f}, {result.seconds:.0f} {_('s')}", flush=True)


def cmd_exercises(args: argparse.Namespace) -> int:
    from explorer import exercise_runs, exercises

    chosen = exercises.of_edition(args.edition)
    if args.measure:
        _measure(chosen, args.data_dir)
    if args.format == "json":
        print(json.dumps([exercises.as_json(e) for e in chosen], ensure_ascii=False, indent=1))
    elif args.format == "markdown":
        print(exercises.markdown(exercise_runs.markdown_lines), end="")
    else:
        for e in chosen:
            print(f"{e.id:10s} {_(e.coverage):12s} {_(e.question)}")
    return 0


def cmd_exercise(args: argparse.Namespace) -> int:
    import shlex

    from explorer import exercise_runs, exercises

    e = exercises.get(args.exercise)
    if args.measure:
        _measure([e], args.data_dir)
    print(f"{e.id} ({exercises.EDITIONS[e.edition]} {e.section}, {_('exercise')} {e.number}) · {_(e.kind)}")
    print(f"\n{_(e.question)}\n")
    if e.same:
        print(_("The same exercise in the other edition: {id}").format(id=e.same))
    for setup in e.setups:
        print(f"  {_(setup.label) if setup.label else setup.model}: python -m explorer summary {setup.model}"
              + "".join(f" --set {shlex.quote(f'{k}={v}')}" for k, v in setup.texts().items()))
    if e.note:
        print(_(e.note))
    for what, value in exercises.answer(e):
        print(f"  {what}: {value}")
    if not exercise_runs.trains(e):
        return 0
    kept = exercise_runs.measured(e)
    if kept is None:
        print("\n" + _("Not measured yet: python -m explorer exercise {id} --measure").format(id=e.id))
        return 0
    place, results = kept
    _print_results(_("Trained with the quick preset on the real data ({where}):").format(where=place), results,
                   exercise_runs.verdict(results))
    return 0


def _print_results(heading: str, results: list, verdict: str | None) -> None:
    """Trained networks' results (a lesson's pair, an exercise's setups) as a table, and their sentence."""
    import pandas as pd

    from explorer.views.tables import lesson_table

    print("\n" + heading)
    with pd.option_context("display.unicode.east_asian_width", True):  # a Chinese character is two cells wide
        print(lesson_table(results).to_string(index=False))
    if verdict:
        print(verdict)


def cmd_docs(args: argparse.Namespace) -> int:
    from explorer import docs

    changed = docs.stale() if args.check else docs.write()
    for path in changed:
        print(("differs: " if args.check else "written: ") + path)
    return 1 if args.check and changed else 0
