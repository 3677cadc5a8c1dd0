"""Link references to scikit-learn, NumPy, pandas, matplotlib and joblib offline.

intersphinx needs each project's ``objects.inv``, fetched over the network.
These projects name their API pages after the object, so a reference that
intersphinx did not resolve (no inventory: an offline build) is linked from
that pattern instead. Runs after intersphinx, which wins when it has an
inventory.
"""

from docutils import nodes

BASES = {
    "sklearn": "https://scikit-learn.org/stable/modules/generated/{page}.html#{target}",
    "numpy": "https://numpy.org/doc/stable/reference/generated/{page}.html#{target}",
    "pandas": "https://pandas.pydata.org/docs/reference/api/{target}.html",
    "matplotlib": (
        "https://matplotlib.org/stable/api/_as_gen/{page}.html#{target}"
    ),
    "joblib": "https://joblib.readthedocs.io/en/stable/generated/{page}.html",
}
MODULES = {
    "sklearn": "https://scikit-learn.org/stable/api/{target}.html",
    "numpy": "https://numpy.org/doc/stable/reference/index.html",
    "pandas": "https://pandas.pydata.org/docs/reference/index.html",
}


def _url(reftype, target):
    parts = target.split(".")
    root = parts[0]
    if root not in BASES:
        return None
    if reftype == "mod":
        return MODULES.get(root, "").format(target=target) or None
    # the page is the object itself, or the class holding a method/attribute
    page = target
    for i, part in enumerate(parts[1:], start=1):
        if part[:1].isupper():
            page = ".".join(parts[: i + 1])
            break
    return BASES[root].format(page=page, target=target)


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    url = _url(node.get("reftype"), node.get("reftarget", ""))
    if url is None:
        return None
    ref = nodes.reference("", "", internal=False, refuri=url)
    ref["reftitle"] = node["reftarget"]
    ref.append(contnode)
    return ref


def setup(app):
    app.connect("missing-reference", _resolve, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
