"""``tinygrad-cnn check ANSWERS.json``: which of a student's numbers are right, the first wrong one,
and the mistake of the catalogue that reproduces them."""
import json
import sys

from .. import cli, nn
from .. import worked as W
from ..worked import check as C
from ..worked import modelfile
from ..worked.page import page
from .worked import check_output, read_text, write_page


def register(subparsers):
    p = subparsers.add_parser(
        "check", help="check a student's numbers against the worked solution and diagnose the mistake",
        description="Check the numbers a student worked by hand (any quantities of worked --json, same keys) and "
                    "name the first wrong one and the mistake that explains it. Exit status 0: all right, 1: "
                    "something wrong, 2: bad input.")
    p.add_argument("answers", metavar="ANSWERS.json", help="the student's numbers, keyed as worked --json")
    p.add_argument("--model", default="cnn10", metavar="cnn10|square15|FILE.json",
                   help="the network the answers are for (default cnn10, the worked example)")
    p.add_argument("--engine", choices=nn.ENGINES, default="value", help="the engine that works the solution")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--html", metavar="PATH", help="also write the page of the solution with the student's numbers "
                                                  "and the diagnoses beside the right ones")
    p.set_defaults(func=run)


def _network(model):
    if model in W.MODELS:
        net, x, target = W.spec_model(model)
        return dict(model=net, x=x, target=[target], loss="BCELoss", lr=W.LEARNING_RATE, names=None, state=None,
                    keys_of=W.builtin_json)
    f = modelfile.load(model)
    return dict(model=f.model, x=f.x, target=f.target, loss=f.loss, lr=f.lr, names=f.names, state=f.state)


def run(args):
    if args.html:
        check_output(args.html, "--html", ".html")
    try:
        answers = C.loads(read_text(args.answers, "ANSWERS"), args.answers)
    except C.AnswersError as e:
        raise cli.UsageError(str(e)) from None
    try:
        report = C.check(answers, engine=args.engine, **_network(args.model))
    except modelfile.ModelFileError as e:
        raise cli.UsageError(f"--model: {e}") from None
    except (C.AnswersError, W.NetworkError) as e:
        raise cli.UsageError(f"{args.answers}: {e}") from None
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print("\n".join(C.lines(report)))
    if args.html:
        write_page(args.html, page(report.solution, report=report), sys.stderr if args.json else sys.stdout)
    return 0 if report.all_right else 1
