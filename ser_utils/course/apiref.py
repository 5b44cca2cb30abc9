"""A Sphinx extension for the API page: resolve short cross-references in ``ser_utils`` docstrings.

The docstrings say :class:`UserError` or :data:`EMOTIONS` (the name as the module imports it),
which Sphinx's Python domain finds only when written in full. On a missing reference, this looks
for documented objects whose dotted name ends with the target and links the one match; none or
several matches leave the warning in place (the build fails on it). Listed in ``_config.yml``
(``sphinx: extra_extensions``).
"""

from __future__ import annotations


def _resolve(app, env, node, contnode):
    """``missing-reference`` handler: the unique documented ``py`` object whose name ends with the target."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip(".~")
    domain = env.get_domain("py")
    matches = [name for name in domain.objects if name == target or name.endswith("." + target)]
    if len(matches) != 1:
        return None
    from sphinx.util.nodes import make_refnode

    obj = domain.objects[matches[0]]
    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, matches[0])


def setup(app):
    """Register the handler (Sphinx entry point)."""
    app.connect("missing-reference", _resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
