"""Serves the UI bundle (``plugins/www/dist``: the React views the plugin's ``react_apps`` entries name).

The bundle is built from ``plugins/www`` and shipped in the package, so a plain ``pip install`` serves it: no Node
at runtime, no network. It is served by our FastAPI app, so behind Airflow's authentication like every other
route (the UI's module import sends its ``_token`` cookie). Only the files the build writes are served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the built bundle (``npm run build`` in ``plugins/www``)
DIST = Path(__file__).resolve().parent / "www" / "dist"
BUNDLE = "mlpipe-ui.js"
#: served file name -> media type (a module script needs a JavaScript type)
SERVED = {BUNDLE: "text/javascript; charset=utf-8"}


def register_ui(app: Any) -> None:
    from fastapi import HTTPException
    from fastapi.responses import FileResponse

    @app.get("/static/{name}", include_in_schema=False)
    def mlpipe_ui_bundle(name: str) -> FileResponse:
        media_type = SERVED.get(name)
        path = DIST / name
        if media_type is None or not path.is_file():
            raise HTTPException(404, f"No UI file {name!r} (served: {', '.join(SERVED)}; build it with "
                                     "'npm run build' in airflow_mlpipe/plugins/www)")
        return FileResponse(path, media_type=media_type, headers={"X-Content-Type-Options": "nosniff",
                                                                  "Cache-Control": "no-cache"})
