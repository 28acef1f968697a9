"""The operations console as an ASGI app (Starlette), its pages rendered on the server (Jinja2).

No page, list or download without a session; operator actions are refused to a viewer with 403
on the server; every POST carries the session's CSRF token; logins are throttled. Reads go
through the storage's query port, actions through the `AdminActions` port, and both kinds of
action are appended to the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from gateway.adapters.web import display
from gateway.adapters.web.auth import COOKIE, Session, Sessions, Throttle, csrf_ok
from gateway.config import Settings
from gateway.domain.audit import ZERO_HASH
from gateway.domain.states import FileState, TxState
from gateway.errors import GatewayError
from gateway.service import console
from gateway.service.audit import check, newest, record
from gateway.service.clock import Clock, utcnow
from gateway.service.ports import ConsoleUser, Storage
from gateway.service.statements import load_reconciliation
from gateway.service.users import OPERATOR, Hasher, authenticate

log = structlog.get_logger("gateway.console")
HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]
REFRESH_SECONDS = 15
# The most orders one list page shows (search narrows further).
ORDERS_SHOWN = 500


@dataclass(frozen=True, slots=True)
class Console:
    """What the console's pages need, wired by the composition root."""

    settings: Settings
    storage: Storage
    actions: console.AdminActions
    hasher: Hasher
    sessions: Sessions
    throttle: Throttle
    clock: Clock = utcnow


def create_app(deps: Console) -> Starlette:  # noqa: PLR0915 - one closure per page, side by side
    """The console's ASGI app."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["money"] = display.money
    env.filters["count"] = display.count
    env.filters["moment"] = display.moment
    env.filters["day"] = display.day
    env.filters["stamp"] = display.stamp
    env.filters["name"] = display.name
    env.globals["refresh_seconds"] = REFRESH_SECONDS
    queries = deps.storage.queries

    def page(
        request: Request,
        session: Session,
        user: ConsoleUser | None,
        name: str,
        status_code: int = 200,
        fresh: bool = False,
        **context: Any,
    ) -> Response:
        context |= {"user": user, "csrf": session.csrf, "operator": _is_operator(user)}
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        if fresh:  # a session's cookie is set once: it ends 8 hours after it began
            response.set_cookie(value=deps.sessions.dump(session), **deps.sessions.cookie())
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; script-src 'none'; frame-ancestors 'none'"
        )
        return response

    def signed_in(request: Request) -> tuple[Session, ConsoleUser] | None:
        session = deps.sessions.load(request.cookies.get(COOKIE))
        if session is None or session.user is None:
            return None
        user = queries.user(session.user)
        if user is None or user.disabled:
            return None
        return session, user

    def viewer(handler: Callable[[Request, Session, ConsoleUser], Awaitable[Response]]) -> Handler:
        """Any signed-in user; GET without a session goes to the login page, else 401."""

        async def wrapped(request: Request) -> Response:
            found = await run_in_threadpool(signed_in, request)
            if found is None:
                if request.method == "GET":
                    target = quote(
                        request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    )
                    return RedirectResponse(f"/login?next={target}", status_code=303)
                return Response("sign in first", status_code=401)
            session, user = found
            if request.method == "POST":
                form = await request.form()
                if not csrf_ok(session, form.get("csrf")):
                    return Response("missing or wrong CSRF token", status_code=403)
            return await handler(request, session, user)

        return wrapped

    def operator(
        handler: Callable[[Request, Session, ConsoleUser], Awaitable[Response]],
    ) -> Handler:
        """Signed in with the operator role; a viewer gets 403."""

        async def checked(request: Request, session: Session, user: ConsoleUser) -> Response:
            if user.role != OPERATOR:
                # Refused on the server, and kept in the audit trail with what was attempted.
                log.warning("console.refused", user=user.name, path=request.url.path)
                await run_in_threadpool(
                    lambda: record(
                        deps.storage,
                        actor=user.name,
                        via="console",
                        action="console.refused",
                        subject=request.url.path,
                        detail={"method": request.method, "role": user.role},
                    )
                )
                return page(
                    request, session, user, "refused.html", status_code=403, path=request.url.path
                )
            return await handler(request, session, user)

        return viewer(checked)

    # --- login and logout ---

    async def login_form(request: Request) -> Response:
        session = deps.sessions.load(request.cookies.get(COOKIE))
        return page(
            request,
            session or deps.sessions.new(),
            None,
            "login.html",
            fresh=session is None,
            next=_safe_next(request.query_params.get("next")),
            error=None,
        )

    async def login(request: Request) -> Response:
        session = deps.sessions.load(request.cookies.get(COOKIE))
        form = await request.form()
        if session is None or not csrf_ok(session, form.get("csrf")):
            return Response("missing or wrong CSRF token", status_code=403)
        name = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")))
        address = request.client.host if request.client else "-"
        keys = (f"user:{name}", f"addr:{address}")
        wait = deps.throttle.wait(*keys)
        if wait > 0:
            log.warning("console.login_throttled", user=name, address=address)
            return page(
                request, session, None, "login.html", status_code=429, next=target,
                error=f"Quá nhiều lần đăng nhập sai. Thử lại sau {int(wait) + 1} giây."
                " (Too many failed logins; try again later.)",
            )  # fmt: skip
        user = await run_in_threadpool(authenticate, deps.storage, deps.hasher, name, password)
        if user is None:
            deps.throttle.failed(*keys)
            log.warning("console.login_failed", user=name, address=address)
            return page(
                request, session, None, "login.html", status_code=401, next=target,
                error="Sai tên đăng nhập hoặc mật khẩu. (Wrong user name or password.)",
            )  # fmt: skip
        deps.throttle.succeeded(keys[0])
        log.info("console.login", user=user.name, role=user.role, address=address)
        fresh = deps.sessions.new(user.name)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(value=deps.sessions.dump(fresh), **deps.sessions.cookie())
        return response

    async def logout(request: Request, session: Session, user: ConsoleUser) -> Response:
        log.info("console.logout", user=user.name)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # --- pages ---

    async def home(request: Request, session: Session, user: ConsoleUser) -> Response:
        seen = await run_in_threadpool(console.overview, queries, deps.settings, deps.clock())
        return page(request, session, user, "overview.html", seen=seen, refresh=True)

    async def search(request: Request, session: Session, user: ConsoleUser) -> Response:
        text = request.query_params.get("q", "")
        found = await run_in_threadpool(console.search, queries, text)
        rows = [(o, json.loads(o.payload)) for o in found]
        return page(request, session, user, "search.html", q=text, rows=rows, party=console.party)

    async def order(request: Request, session: Session, user: ConsoleUser) -> Response:
        order_id = request.path_params["order_id"]
        found = await run_in_threadpool(queries.order, order_id)
        if found is None:
            return page(
                request, session, user, "missing.html", status_code=404, what=f"lệnh {order_id}"
            )
        events = await run_in_threadpool(console.timeline, queries, found)
        payload = json.loads(found.payload)
        return page(
            request, session, user, "order.html", order=found, payload=payload, events=events,
            party=console.party,
        )  # fmt: skip

    async def orders(request: Request, session: Session, user: ConsoleUser) -> Response:
        partner = request.query_params.get("partner") or None
        state_text = request.query_params.get("state") or ""
        state = TxState(state_text) if state_text in {s.value for s in TxState} else None
        listed = await run_in_threadpool(
            lambda: queries.orders_in_state(state, partner=partner, limit=ORDERS_SHOWN)
        )
        rows = [(o, json.loads(o.payload)) for o in listed]
        return page(
            request, session, user, "orders.html", rows=rows, partner=partner, state=state_text,
            party=console.party, shown=ORDERS_SHOWN,
        )  # fmt: skip

    async def files(request: Request, session: Session, user: ConsoleUser) -> Response:
        partner = request.query_params.get("partner") or None
        state_text = request.query_params.get("state") or ""
        state = FileState(state_text) if state_text in console.file_states() else None
        listed = await run_in_threadpool(lambda: queries.files(partner=partner, state=state))
        return page(
            request, session, user, "files.html", files=listed, partner=partner,
            state=state_text, states=console.file_states(), partners=sorted(deps.settings.partners),
        )  # fmt: skip

    async def file(request: Request, session: Session, user: ConsoleUser) -> Response:
        msg_id = request.path_params["msg_id"]
        detail = await run_in_threadpool(console.file_detail, queries, msg_id)
        if detail is None:
            return page(
                request, session, user, "missing.html", status_code=404, what=f"tệp {msg_id}"
            )
        return page(
            request,
            session,
            user,
            "file.html",
            detail=detail,
            party=console.party,
            loads=json.loads,
        )

    async def file_sent(request: Request, session: Session, user: ConsoleUser) -> Response:
        msg_id = request.path_params["msg_id"]
        body = await run_in_threadpool(console.sent_bytes, queries, msg_id)
        if body is None:
            return Response("no such file", status_code=404)
        return _download(body, f"{msg_id}.xml")

    async def inbound(request: Request, session: Session, user: ConsoleUser) -> Response:
        partner, msg_id = request.path_params["partner"], request.path_params["msg_id"]
        found = await run_in_threadpool(queries.inbound_file, partner, msg_id)
        if found is None:
            return Response("no such file", status_code=404)
        return _download(found.raw, f"{partner}-{msg_id}.xml")

    async def parked(request: Request, session: Session, user: ConsoleUser) -> Response:
        items, problems = await run_in_threadpool(deps.actions.parked)
        return page(request, session, user, "parked.html", items=items, problems=problems)

    async def parked_confirm(request: Request, session: Session, user: ConsoleUser) -> Response:
        params = request.query_params
        action = params.get("action", "")
        if action not in ("replay", "drop"):
            return Response("unknown action", status_code=400)
        return page(
            request, session, user, "confirm_parked.html", action=action,
            queue=params.get("queue", ""), message_id=params.get("id", ""), error=None,
        )  # fmt: skip

    async def parked_act(request: Request, session: Session, user: ConsoleUser) -> Response:
        form = await request.form()
        action = request.path_params["action"]
        queue, message_id = str(form.get("queue", "")), str(form.get("id", ""))
        reason = str(form.get("reason", "")).strip()
        if action == "drop" and not reason:
            return page(
                request, session, user, "confirm_parked.html", status_code=400, action=action,
                queue=queue, message_id=message_id,
                error="Cần nêu lý do. (A reason is required to drop a message.)",
            )  # fmt: skip
        try:
            if action == "replay":
                await run_in_threadpool(
                    lambda: deps.actions.replay(queue, message_id, actor=user.name)
                )
            elif action == "drop":
                await run_in_threadpool(
                    lambda: deps.actions.drop(queue, message_id, reason, actor=user.name)
                )
            else:
                return Response("unknown action", status_code=400)
        except GatewayError as exc:
            return page(
                request, session, user, "confirm_parked.html", status_code=409, action=action,
                queue=queue, message_id=message_id, error=str(exc),
            )  # fmt: skip
        return RedirectResponse(f"/parked?done={action}", status_code=303)

    async def quarantine(request: Request, session: Session, user: ConsoleUser) -> Response:
        items = await run_in_threadpool(queries.quarantined)
        return page(request, session, user, "quarantine.html", items=items)

    async def quarantine_download(
        request: Request, session: Session, user: ConsoleUser
    ) -> Response:
        qid = _int(request.path_params["qid"])
        found = await run_in_threadpool(queries.quarantined_file, qid)
        raw = await run_in_threadpool(deps.actions.quarantined_bytes, qid)
        if found is None or raw is None:
            return Response("no such file", status_code=404)
        return _download(raw, f"quarantine-{found.quarantine_id}-{found.partner}.xml")

    async def quarantine_confirm(request: Request, session: Session, user: ConsoleUser) -> Response:
        found = await run_in_threadpool(queries.quarantined_file, _int(request.path_params["qid"]))
        if found is None:
            return page(request, session, user, "missing.html", status_code=404, what="tệp cách ly")
        return page(request, session, user, "confirm_reprocess.html", item=found, error=None)

    async def quarantine_reprocess(
        request: Request, session: Session, user: ConsoleUser
    ) -> Response:
        qid = _int(request.path_params["qid"])
        try:
            await run_in_threadpool(lambda: deps.actions.reprocess(qid, actor=user.name))
        except GatewayError as exc:
            found = queries.quarantined_file(qid)
            if found is None:
                return Response(str(exc), status_code=404)
            return page(
                request,
                session,
                user,
                "confirm_reprocess.html",
                status_code=409,
                item=found,
                error=str(exc),
            )
        return RedirectResponse("/quarantine?done=reprocess", status_code=303)

    async def reconcile(request: Request, session: Session, user: ConsoleUser) -> Response:
        days = await run_in_threadpool(queries.statement_days)
        chosen = console.day_or_none(request.query_params.get("date")) or (
            days[-1] if days else None
        )
        partner = request.query_params.get("partner") or None
        results = (
            await run_in_threadpool(load_reconciliation, queries, chosen, partner) if chosen else []
        )
        return page(
            request, session, user, "reconcile.html", days=days, chosen=chosen, results=results,
            partner=partner, partners=sorted(deps.settings.partners),
        )  # fmt: skip

    async def audit(request: Request, session: Session, user: ConsoleUser) -> Response:
        # A row changed in the database so that it cannot be read back is named, not a crash.
        rows, unreadable = await run_in_threadpool(newest, queries, 500)
        count, broken = await run_in_threadpool(check, queries)
        return page(
            request, session, user, "audit.html", rows=rows[::-1], count=count, broken=broken,
            unreadable=unreadable, loads=_detail, zero=ZERO_HASH,
        )  # fmt: skip

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", viewer(logout), methods=["POST"]),
        Route("/", viewer(home)),
        Route("/search", viewer(search)),
        Route("/orders", viewer(orders)),
        Route("/orders/{order_id:path}", viewer(order)),
        Route("/files", viewer(files)),
        Route("/files/{msg_id}/sent", viewer(file_sent)),
        Route("/files/{msg_id}", viewer(file)),
        Route("/inbound/{partner}/{msg_id}", viewer(inbound)),
        Route("/parked", viewer(parked)),
        Route("/parked/confirm", operator(parked_confirm)),
        Route("/parked/{action}", operator(parked_act), methods=["POST"]),
        Route("/quarantine", viewer(quarantine)),
        Route("/quarantine/{qid}/download", viewer(quarantine_download)),
        Route("/quarantine/{qid}/confirm", operator(quarantine_confirm)),
        Route("/quarantine/{qid}/reprocess", operator(quarantine_reprocess), methods=["POST"]),
        Route("/reconcile", viewer(reconcile)),
        Route("/audit", viewer(audit)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes)


def _detail(text: str) -> dict[str, Any]:
    """An audit row's detail for its cell: the JSON it was written as, or the text as it is
    stored when someone changed it into something else (the chain check names the row)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"(not JSON)": text}
    return value if isinstance(value, dict) else {"(not an object)": value}


def _is_operator(user: ConsoleUser | None) -> bool:
    return user is not None and user.role == OPERATOR


def _safe_next(value: str | None) -> str:
    """Where to go after login: a path of this console only (never another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def _download(body: bytes, filename: str) -> Response:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
    return Response(
        body,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
