"""`kt models`: the zoo's families, with their sizes, tasks and parameter counts."""

HELP = "list the model families, their sizes, tasks and parameter counts"


def add_arguments(parser):
    parser.add_argument("name", nargs="?", help="one family (default: all)")


def run(args):
    import zoo

    names = [args.name] if args.name else zoo.names()
    rows = [("model", "size", "parameters", "tasks")]
    for name in names:
        tasks = ", ".join(zoo.tasks(name))
        for size in zoo.sizes(name):
            rows.append((name, size, f"{zoo.count_params(name, size):,}", tasks))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
    return 0
