"""The admin dashboard in a real browser, against the demo under load.

Usage: dashboard.py BASE_URL TOKEN DEMO_PID DEMO_BINARY OUT_DIR

Headless Chromium, driven through chromedriver, loads BASE_URL/dashboard and:
- is refused with a wrong token, with a clear message, and keeps the token
  out of the URL, the cookies and (when refused) session storage;
- with the right token, shows the loaded pool's gauges, counters and
  connections table as the API reports them at the same moment: each figure
  the page shows lies between two API reads taken around its poll;
- lists every registered pool in its selector, and shows the partitioned
  pool's partitions against their limits, and its leaks;
- closes an idle connection from its Kill button once the dialog is
  accepted (and nothing when it is dismissed); refuses a borrowed one
  without "force", and closes it on its return with "force";
- shows a banner while the demo is stopped (SIGSTOP), and recovers by itself
  when it runs again (SIGCONT); and again when the demo is killed and a new
  one started on the same address, whose pool it then follows afresh.
Screenshots go to OUT_DIR. Exits non-zero with the first failed check.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import Driver, wait_for  # noqa: E402

BASE, TOKEN, DEMO_PID, DEMO, OUT = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
TOKEN_KEY = "rusty-db.admin-token"
checks = 0


def ok(condition, message):
    global checks
    checks += 1
    if not condition:
        raise AssertionError(message)
    print(f"  ok: {message}")


def api(path, method="GET", token=TOKEN):
    """(status, parsed JSON body) of an admin API call."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(BASE + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def stats(pool):
    status, body = api(f"/api/v1/pools/{pool}/stats")
    assert status == 200, f"stats of {pool}: {status}"
    return body["data"]


def connections(pool):
    status, body = api(f"/api/v1/connections?pool_id={pool}")
    assert status == 200, f"connections of {pool}: {status}"
    return {c["id"]: c for c in body["data"]}


def number(text):
    return int(text.replace(",", ""))


def step(title):
    print(f"\n--- {title}")


step("GET /dashboard needs no token; the API still does")
with urllib.request.urlopen(BASE + "/dashboard", timeout=10) as response:
    page = response.read().decode()
    ok(response.status == 200 and response.headers["Content-Type"].startswith("text/html"),
       "/dashboard answers 200 text/html without a token")
    policy = response.headers.get("Content-Security-Policy", "")
    ok("connect-src 'self'" in policy and "default-src 'none'" in policy,
       f"its content security policy keeps it to this server: {policy}")
    ok(response.headers.get("X-Frame-Options") == "DENY", "it may not be framed")
ok(all(word not in page for word in (" src=", " href=", "<link", "@import", "url(", "import(")),
   "the page loads nothing from elsewhere: script and style are inline")
ok(api("/api/v1/pools", token=None)[0] == 401, "/api/v1/pools without the token is 401")

driver = Driver(log=os.path.join(OUT, "chromedriver.log"))
try:
    def js(script, *args):
        return driver.run(script, *args)

    def polls():
        return int(driver.find("#app").attribute("data-polls"))

    def after_polls(n, pool):
        """Waits until the page has finished `n` more polls of `pool`."""
        start = polls()
        wait_for(f"{n} polls of {pool}",
                 lambda: polls() >= start + n and driver.find("#app").attribute("data-pool") == pool, 20)

    def choose(pool):
        driver.find(f'#pool option[value="{pool}"]').click()
        after_polls(2, pool)

    step("a wrong token is refused with a clear message, and kept nowhere")
    driver.get(BASE + "/dashboard")
    wait_for("the token form", lambda: driver.find("#login").displayed())
    ok(not driver.find("#app").displayed(), "nothing but the token form shows before a token is entered")
    driver.find("#token").type("not-" + TOKEN)
    driver.find("#connect").click()
    message = wait_for("the refusal", lambda: driver.text("#login-error"))
    ok("refused" in message and "401" in message, f"the page says: {message!r}")
    ok(driver.find("#login").displayed() and not driver.find("#app").displayed(), "and asks again")
    ok(js(f"return sessionStorage.getItem('{TOKEN_KEY}')") is None, "a refused token is not kept")

    step("the right token: kept in session storage only, never in the URL or a cookie")
    driver.find("#token").type(TOKEN)
    driver.find("#connect").click()
    after_polls(2, "pool_default")
    ok(js(f"return sessionStorage.getItem('{TOKEN_KEY}')") == TOKEN, "the token is in session storage")
    ok(TOKEN not in js("return location.href"), "the URL does not carry it")
    ok(js("return document.cookie") == "", "no cookie is set")
    ok(js(f"return localStorage.getItem('{TOKEN_KEY}')") is None, "nor local storage")

    step("every registered pool is in the selector")
    listed = [p["id"] for p in api("/api/v1/pools")[1]["data"]]
    options = js("return Array.from(document.querySelectorAll('#pool option')).map(o => o.value)")
    ok(options == listed and {"pool_default", "pool_tenants"} <= set(options), f"pools {options}")

    step("the gauges and counters show the loaded pool's live figures")
    saw_active = saw_waiting = 0
    for attempt in range(5):
        before = stats("pool_default")
        after_polls(2, "pool_default")  # a poll that began after `before`
        shown = {k: number(driver.text(f"#{k}")) for k in
                 ["g-active", "g-idle", "g-waiting", "g-total", "g-max", "t-acquires", "t-created"]}
        rate = driver.text("#r-acquires")
        after = stats("pool_default")
        ok(shown["g-max"] == before["max_connections"] == 4, f"max {shown['g-max']} as the API says")
        ok(before["acquires"] <= shown["t-acquires"] <= after["acquires"],
           f"acquires {shown['t-acquires']:,} lies between the API's {before['acquires']:,} and "
           f"{after['acquires']:,} read around it")
        ok(before["connections_created"] <= shown["t-created"] <= after["connections_created"],
           f"connections created {shown['t-created']} as the API says")
        low, high = sorted([before["total_connections"], after["total_connections"]])
        ok(low <= shown["g-total"] <= high, f"open connections {shown['g-total']} as the API says")
        ok(shown["g-active"] + shown["g-idle"] <= shown["g-total"] <= shown["g-max"],
           f"active {shown['g-active']} + idle {shown['g-idle']} <= open <= max")
        ok(rate != "–" and float(rate.replace(",", "")) > 0, f"acquires per second {rate} under load")
        saw_active += shown["g-active"] > 0
        saw_waiting += shown["g-waiting"] > 0
    ok(saw_active > 0 and saw_waiting > 0,
       f"under load the page showed borrowed connections ({saw_active}/5) and waiting threads ({saw_waiting}/5)")

    step("the connections table lists the pool's connections as the API does")
    for attempt in range(10):
        before = connections("pool_default")
        after_polls(2, "pool_default")
        rows = js("""return Array.from(document.querySelectorAll('#connection-rows tr')).map(tr =>
                       [tr.dataset.id, tr.children[1].textContent, tr.children[3].textContent])""")
        after = connections("pool_default")
        if set(before) == set(after):
            break
    ids = [r[0] for r in rows]
    ok(set(ids) == set(before) == set(after) and len(ids) == 4, f"the rows are the API's connections: {ids}")
    for conn_id, state, borrows in rows:
        ok(state in ("active", "idle"), f"{conn_id} is {state}")
        ok(before[conn_id]["borrow_count"] <= number(borrows) <= after[conn_id]["borrow_count"],
           f"{conn_id}'s {borrows} borrows lie between the API's reads")

    step("percentiles, the charts and the histogram are drawn from the histograms route")
    after_polls(3, "pool_default")
    for which in ("acquire", "wait"):
        shown = [driver.text(f"#p-{which}-{q}") for q in ("p50", "p95", "p99")]
        ok(all(s != "–" for s in shown), f"{which} time p50/p95/p99: {shown}")
        lines = js(f"return document.querySelectorAll('#chart-{which} path').length")
        ok(lines == 3, f"the {which}-time chart draws p50, p95 and p99 ({lines} lines)")
    bars = js("return document.querySelectorAll('#histogram rect').length")
    ok(bars > 0, f"the wait-time histogram has {bars} bars")
    ok("not partitioned" in driver.text("#partitions-note"), "pool_default is shown as not partitioned")
    ok("No connection" in driver.text("#leaks-note"), "and without leaks")

    step("without force, a borrowed connection is refused")
    refused = False
    for attempt in range(5):
        active = [r for r in js("""return Array.from(document.querySelectorAll(
                   '#connection-rows tr[data-state=active]')).map(tr => tr.dataset.id)""")]
        if not active:
            after_polls(1, "pool_default")
            continue
        driver.find(f'#connection-rows tr[data-id="{active[0]}"] button.kill').click()
        ok(active[0] in wait_for("the dialog", driver.alert_text), f"a dialog asks to confirm closing {active[0]}")
        driver.accept_alert()
        result = wait_for("the kill's answer", lambda: "…" not in driver.text("#kill-result")
                          and driver.text("#kill-result"))
        if "Not killed" in result:
            ok("borrowed" in result and "force" in result, f"the page says: {result!r}")
            ok(active[0] in connections("pool_default"), f"{active[0]} is still open")
            refused = True
            break
        print(f"  ({active[0]} was idle when the kill arrived: {result!r}; trying another)")
    ok(refused, "a kill without force was refused for a borrowed connection")

    step("with force, a borrowed connection is closed when it is returned")
    driver.find("#force").click()
    killed_before = stats("pool_default")["closed_killed"]
    target = js("return document.querySelector('#connection-rows tr[data-state=active]')?.dataset.id") or \
        js("return document.querySelector('#connection-rows tr').dataset.id")
    driver.find(f'#connection-rows tr[data-id="{target}"] button.kill').click()
    ok("borrowed" in wait_for("the dialog", driver.alert_text), "the dialog says what force does")
    driver.accept_alert()
    result = wait_for("the forced kill's answer", lambda: "…" not in driver.text("#kill-result")
                      and driver.text("#kill-result"))
    ok(target in result and ("closed" in result) and "Not killed" not in result, f"the page says: {result!r}")
    wait_for(f"{target} to close", lambda: target not in connections("pool_default"), 10)
    wait_for(f"{target} counted as killed", lambda: stats("pool_default")["closed_killed"] == killed_before + 1, 5)
    ok(stats("pool_default")["closed_killed"] == killed_before + 1, f"{target} was closed, counted as killed")
    wait_for(f"{target}'s row to go", lambda: not driver.find_all(f'#connection-rows tr[data-id="{target}"]'), 10)
    driver.find("#force").click()
    ok(not js("return document.getElementById('force').checked"), "force is unticked again")

    step("the partitioned pool: partitions against their limits")
    choose("pool_tenants")
    wanted = {p["name"]: p for p in api("/api/v1/pools/pool_tenants/partitions")[1]["data"]}
    rows = js("""return Array.from(document.querySelectorAll('#partition-rows tr')).map(tr =>
                   [tr.dataset.partition, tr.querySelector('.usage').textContent, tr.children[4].textContent])""")
    ok(sorted(r[0] for r in rows) == sorted(wanted) == ["tenant_acme", "tenant_globex"], f"partitions {rows}")
    for name, usage, reserved in rows:
        active, limit = (int(x) for x in usage.split(" / "))
        ok(limit == wanted[name]["limits"]["max_connections"] == 2 and 0 <= active <= limit,
           f"{name}: {usage} against its max_connections")
        ok(int(reserved) == wanted[name]["limits"]["min_connections"] == 1, f"{name}: {reserved} reserved")
    ok(number(driver.text("#g-max")) == 4, "the selector switched the gauges to pool_tenants (max 4)")

    step("a connection held past the leak threshold shows as a leak, and goes when returned")
    leak = wait_for("a leak row", lambda: js("""const tr = document.querySelector('#leak-rows tr');
        return tr && Array.from(tr.children).map(td => td.textContent)"""), 30)
    conn_id, held, thread, query = leak
    api_leaks = [l["connection_id"] for l in api("/api/v1/pools/pool_tenants/leaks")[1]["data"]["detected_leaks"]]
    ok(conn_id in connections("pool_tenants"), f"the leaked {conn_id} is one of the pool's connections")
    ok(thread == "tenant-globex" and "slow report" in query, f"held by {thread} running {query!r} for {held}")
    ok("1 connection is held" in driver.text("#leaks-note"), driver.text("#leaks-note"))
    print(f"  (the API lists {api_leaks} just after)")
    wait_for(f"{conn_id}'s leak to clear", lambda: not driver.find_all("#leak-rows tr"), 15)
    ok("No connection" in driver.text("#leaks-note"), "the leak is cleared once the connection is returned")

    step("a kill from the page closes an idle connection, and a dismissed one nothing")
    closed = None
    for attempt in range(5):
        idle = wait_for("an idle connection", lambda: js(
            "return document.querySelector('#connection-rows tr[data-state=idle]')?.dataset.id"), 20)
        killed_before = stats("pool_tenants")["closed_killed"]
        button = f'#connection-rows tr[data-id="{idle}"] button.kill'
        driver.find(button).click()
        ok(idle in wait_for("the dialog", driver.alert_text), f"a dialog asks to confirm closing {idle}")
        driver.dismiss_alert()
        after_polls(2, "pool_tenants")
        ok(idle in connections("pool_tenants") and stats("pool_tenants")["closed_killed"] == killed_before,
           f"dismissed: {idle} is still open")
        driver.find(button).click()
        driver.accept_alert()
        result = wait_for("the kill's answer", lambda: "…" not in driver.text("#kill-result")
                          and driver.text("#kill-result"))
        if result == f"{idle} closed.":
            closed = idle
            break
        print(f"  ({idle} was borrowed when the kill arrived: {result!r}; trying another)")
    ok(closed is not None, f"the page says {closed} closed")
    ok(closed not in connections("pool_tenants"), f"the API no longer lists {closed}")
    ok(stats("pool_tenants")["closed_killed"] == killed_before + 1, "the pool counts it as killed")
    wait_for(f"{closed}'s row to go", lambda: not driver.find_all(f'#connection-rows tr[data-id="{closed}"]'), 10)
    ok(True, f"{closed}'s row is gone from the table")
    driver.screenshot(os.path.join(OUT, "dashboard-tenants.png"))

    step("screenshot of the loaded pool")
    choose("pool_default")
    after_polls(12, "pool_default")
    driver.screenshot(os.path.join(OUT, "dashboard.png"))

    step("a banner while the server does not answer, gone by itself when it does")
    os.kill(DEMO_PID, signal.SIGSTOP)
    try:
        banner = wait_for("the banner", lambda: driver.find("#banner").displayed() and driver.text("#banner"), 20)
        ok("not answering" in banner, f"the banner says: {banner!r}")
        driver.screenshot(os.path.join(OUT, "dashboard-server-down.png"))
    finally:
        os.kill(DEMO_PID, signal.SIGCONT)
    wait_for("the banner to go", lambda: not driver.find("#banner").displayed(), 30)
    after_polls(2, "pool_default")
    ok(True, "the banner went and polling went on by itself")

    step("the demo killed, and a new one started on the same address")
    old_acquires = number(driver.text("#t-acquires"))
    os.kill(DEMO_PID, signal.SIGTERM)
    banner = wait_for("the banner", lambda: driver.find("#banner").displayed() and driver.text("#banner"), 20)
    ok("not answering" in banner, f"with nothing listening, the banner says: {banner!r}")
    log = open(os.path.join(OUT, "demo-restarted.out"), "w")
    restarted = subprocess.Popen([DEMO, "--duration", "120", "--admin-addr", BASE.split("//")[1],
                                  "--admin-token", TOKEN], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for("the banner to go", lambda: not driver.find("#banner").displayed(), 30)
        after_polls(1, "pool_default")
        restarted_at = polls()
        before = stats("pool_default")
        after_polls(2, "pool_default")
        shown = number(driver.text("#t-acquires"))
        after = stats("pool_default")
        ok(before["acquires"] <= shown <= after["acquires"] and shown < old_acquires,
           f"the page shows the new pool's {shown:,} acquires (the old one had {old_acquires:,})")
        grown = int(driver.find("#app").attribute("data-history"))
        after_polls(2, "pool_default")
        now = int(driver.find("#app").attribute("data-history"))
        ok(now > grown and now <= polls() - restarted_at + 2,
           f"the charts' history started afresh with the new pool ({grown} then {now} snapshots)")
    finally:
        restarted.terminate()
        restarted.wait(20)
        log.close()
finally:
    driver.quit()

print(f"\ndashboard in a browser: passed, {checks} checks; screenshots in {OUT}")
