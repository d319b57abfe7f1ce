"""`greenwatch dashboards publish`: upsert the folder, the InfluxDB data source and
every dashboard into a Grafana through its HTTP API (grafana-client), by uid.

Each object is read first and written only when it differs from what greenwatch
would write, so publishing twice changes nothing (no new dashboard versions). A
dashboard is posted with the version just read and `overwrite: false` (unless forced):
if someone saves it in Grafana in between, Grafana answers 412 and nothing of theirs
is lost.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaUnauthorizedError,
    TokenAuth,
)

from greenwatch.core.config import InfluxConfig

from .config import GrafanaConfig
from .sdk import DATASOURCE_UID

log = logging.getLogger(__name__)
DATASOURCE_NAME = "greenwatch InfluxDB"


class PublishError(Exception):
    """Grafana refused or could not be reached; the message says which object and why.
    `bad_input` when the user's config is at fault (no token, a token Grafana refuses)."""

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


@dataclass
class Published:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def datasource_model(influx: InfluxConfig, url: str | None = None) -> dict[str, Any]:
    """Grafana's InfluxDB data source in InfluxQL mode, with greenwatch's fixed uid.
    `url` is how Grafana reaches InfluxDB, when that differs from greenwatch's."""
    model: dict[str, Any] = {
        "uid": DATASOURCE_UID, "name": DATASOURCE_NAME, "type": "influxdb", "access": "proxy",
        "url": url or influx.url, "isDefault": False,
        "jsonData": {"dbName": influx.database, "httpMode": "POST", "version": "InfluxQL",
                     "tlsSkipVerify": not influx.verify_tls},
    }
    # Credentials go in secureJsonData, which Grafana stores encrypted and never reads back.
    if influx.token is not None:
        model["jsonData"]["httpHeaderName1"] = "Authorization"
        model["secureJsonData"] = {"httpHeaderValue1": f"Token {influx.token.get_secret_value()}"}
    elif influx.username is not None:
        model["user"] = influx.username
        if influx.password is not None:
            model["secureJsonData"] = {"password": influx.password.get_secret_value()}
    return model


def with_variables(model: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    """The dashboard with its number variables set to the config's values."""
    if not values:
        return model
    model = copy.deepcopy(model)
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") == "textbox" and variable["name"] in values:
            text = f"{values[variable['name']]:g}"
            variable["query"] = text
            variable["current"] = {"selected": True, "text": text, "value": text}
    return model


def connect(config: GrafanaConfig) -> GrafanaApi:
    if config.token is None:
        raise PublishError("grafana.token is not set: give a service-account token as ${GRAFANA_TOKEN}, "
                           "{env: NAME} or {file: PATH}", bad_input=True)
    parts = urlsplit(config.url)
    prefix = parts.path.strip("/")
    verify: bool | str = str(config.ca_file) if config.ca_file and config.verify_tls else config.verify_tls
    return GrafanaApi(TokenAuth(config.token.get_secret_value()), host=parts.hostname, port=parts.port,
                      protocol=parts.scheme, url_path_prefix=f"{prefix}/" if prefix else "",
                      verify=verify, timeout=config.timeout)


def _same(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Whether Grafana already holds `ours`: every key we set has our value (Grafana
    adds its own: id, version, readOnly, ...)."""
    return all(key in theirs and (_same(v, theirs[key]) if isinstance(v, dict) and isinstance(theirs[key], dict)
                                  else theirs[key] == v) for key, v in ours.items())


def _missing(exc: GrafanaException) -> bool:
    return isinstance(exc, GrafanaClientError) and exc.status_code == 404


def _explain(what: str, exc: Exception, url: str) -> PublishError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return PublishError(f"{what}: Grafana at {url} answered 401 Unauthorized: the token (grafana.token) is "
                            "wrong, expired or revoked", bad_input=True)
    status = getattr(exc, "status_code", 0)
    response = getattr(exc, "response", None)
    detail = response.get("message") if isinstance(response, dict) else None
    if status == 403:
        return PublishError(f"{what}: Grafana answered 403 Forbidden: the service account needs the Editor "
                            "role (Admin for the data source)")
    if status == 412:
        reason = response.get("status") if isinstance(response, dict) else None
        hint = ("another dashboard in the folder has the same title" if reason == "name-exists" else
                "it was changed in Grafana while publishing; publish again, or --force to overwrite")
        return PublishError(f"{what}: Grafana answered 412 Precondition Failed ({reason or detail}): {hint}")
    if status:
        return PublishError(f"{what}: Grafana answered {status}: {detail or exc}")
    return PublishError(f"{what}: cannot reach Grafana at {url}: {exc}")


class Publisher:
    def __init__(self, config: GrafanaConfig, api: GrafanaApi | None = None) -> None:
        self.config = config
        self.api = api or connect(config)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GrafanaException as exc:
            if _missing(exc):
                return None
            raise _explain(what, exc, self.config.url) from None
        except OSError as exc:  # niquests' connection errors are OSErrors
            raise _explain(what, exc, self.config.url) from None

    def folder(self, done: Published) -> None:
        what = f"folder {self.config.folder_uid}"
        found = self._call(what, self.api.folder.get_folder, self.config.folder_uid)
        if found is None:
            self._call(what, self.api.folder.create_folder, self.config.folder, uid=self.config.folder_uid)
            done.created.append(what)
        elif found.get("title") != self.config.folder:
            self._call(what, self.api.folder.update_folder, self.config.folder_uid, title=self.config.folder,
                       version=found.get("version"), overwrite=False)
            done.updated.append(what)
        else:
            done.unchanged.append(what)

    def datasource(self, model: dict[str, Any], done: Published) -> None:
        what = f"data source {model['uid']}"
        found = self._call(what, self.api.datasource.get_datasource_by_uid, model["uid"])
        # secureJsonData is never read back: compare the rest, and send the secret
        # whenever something else changed (or on --force).
        visible = {k: v for k, v in model.items() if k != "secureJsonData"}
        if found is None:
            self._call(what, self.api.datasource.create_datasource, model)
            done.created.append(what)
        elif not _same(visible, found):
            self._call(what, self.api.datasource.update_datasource_by_uid, model["uid"], model)
            done.updated.append(what)
        else:
            done.unchanged.append(what)

    def dashboard(self, model: dict[str, Any], done: Published, force: bool = False) -> None:
        what = f"dashboard {model['uid']} ({model.get('title')})"
        found = self._call(what, self.api.dashboard.get_dashboard, model["uid"])
        if found is not None:
            theirs = found.get("dashboard", {})
            folder = (found.get("meta") or {}).get("folderUid")
            if not force and folder == self.config.folder_uid and _without_grafana_keys(theirs) == model:
                done.unchanged.append(what)
                return
        body = {"dashboard": {**model, "id": None, "version": (found or {}).get("dashboard", {}).get("version")},
                "folderUid": self.config.folder_uid, "overwrite": force,
                "message": "greenwatch dashboards publish"}
        if found is None:
            body["dashboard"].pop("version")
        self._call(what, self.api.dashboard.update_dashboard, body)
        (done.updated if found is not None else done.created).append(what)


def _without_grafana_keys(theirs: dict[str, Any]) -> dict[str, Any]:
    """Grafana's copy without the keys Grafana itself adds (id, version): any other
    difference, such as a panel someone added by hand, is a change to publish over."""
    return {k: v for k, v in theirs.items() if k not in ("id", "version")}


def publish(config: GrafanaConfig, influx: InfluxConfig, dashboards: list[dict[str, Any]], *,
            force: bool = False, api: GrafanaApi | None = None) -> Published:
    """Folder, data source, then every dashboard; stops at the first refusal."""
    publisher = Publisher(config, api)
    done = Published()
    publisher.folder(done)
    publisher.datasource(datasource_model(influx, config.influxdb_url), done)
    for model in dashboards:
        publisher.dashboard(with_variables(model, config.variables), done, force)
    log.info("published to %s: %d created, %d updated, %d unchanged", config.url,
             len(done.created), len(done.updated), len(done.unchanged))
    return done
