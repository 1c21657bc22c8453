"""JupyterLab in a real browser: run lesson 5 in headless Chromium and check its widgets render.

    .venv/bin/python scripts/browser_check.py [--out browser-check] [--lesson notebooks/05_efficiency.ipynb]

Serves JupyterLab on localhost (a random free port, a random token) over a copy of the lesson in a
temporary folder, opens it in headless Chromium driven by selenium (Debian's ``chromium`` and
``chromium-driver``; nothing is downloaded at run time), runs every cell (*Run > Run All Cells*) in fast
mode, and then checks that

* every cell ran (no cell still waiting, no error output), and
* the cost explorer rendered as a live widget: its slider is on the page and no output says
  "Error displaying widget" (what JupyterLab shows when the widget's JavaScript is missing).

It saves ``screenshot.png`` (the explorer in view) and ``page.txt`` (the page's text) in ``--out``.
Exit code 0 when all checks pass, 1 when one fails, 2 when the browser or its driver is missing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find(names) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            return path
    return None


def start_lab(folder: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port over ``folder``; returns once it answers (or raises after 90 s)."""
    # JupyterLab renders only the cells in view unless told otherwise: every cell must be on the page.
    settings = folder.parent / f"{folder.name}-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    # No "Would you like to get notified about official Jupyter news?" pop-up over the lesson: news never
    # fetched (so never asked about), no update check.
    notices = settings.parent / "apputils-extension"
    notices.mkdir(parents=True, exist_ok=True)
    (notices / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, "TUTORLIB_MODE": "fast", "TUTORLIB_OFFLINE": "1",
           "JUPYTERLAB_SETTINGS_DIR": str(folder.parent / f"{folder.name}-settings")}
    lab = subprocess.Popen([str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
                            "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
                            "--allow-root", "--LabApp.news_url=",
                            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return lab
        except OSError:
            if lab.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {lab.returncode}; see its log")
            time.sleep(1)
    raise RuntimeError("JupyterLab did not answer within 90 s; see its log")


def browser(chromium: str, driver: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def run_all_cells(page, timeout_s: float) -> None:
    """Click Run > Run All Cells, then wait until no cell prompt shows [*] (running or queued)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(page, 120)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")))
    # the kernel must be up before running: its status reads "Idle" in the status bar
    wait.until(lambda p: "Idle" in p.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget, #jp-main-statusbar").text)
    run_menu = "//li[contains(@class,'lm-MenuBar-item')][.//div[text()='Run']]"
    run_all = "//li[contains(@class,'lm-Menu-item')][.//div[text()='Run All Cells']]"
    wait.until(ready.element_to_be_clickable((By.XPATH, run_menu))).click()
    wait.until(ready.element_to_be_clickable((By.XPATH, run_all))).click()
    time.sleep(3)

    def finished(p):
        prompts = [e.text for e in p.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        return prompts and not any("*" in t for t in prompts) and all(t.strip() not in ("[ ]:", "") for t in prompts)
    WebDriverWait(page, timeout_s, poll_frequency=2).until(finished)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="browser-check", help="folder for screenshot.png and page.txt")
    parser.add_argument("--lesson", default="notebooks/05_efficiency.ipynb")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for running every cell")
    args = parser.parse_args(argv)
    chromium, driver = find(BROWSERS), find(DRIVERS)
    if not chromium or not driver:
        print("browser_check: needs Chromium and its driver (Debian: apt-get install chromium chromium-driver); "
              f"found browser {chromium}, driver {driver}", file=sys.stderr)
        return 2
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("browser_check: needs selenium: .venv/bin/uv pip install -e '.[browser]' (or scripts/venv.sh)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lesson = ROOT / args.lesson
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp, open(out / "jupyterlab.log", "w") as log:
        folder = Path(tmp) / "lab"
        folder.mkdir()
        shutil.copy(lesson, folder / lesson.name)  # the lesson in the repository is never saved over
        port, token = free_port(), secrets.token_hex(16)
        lab = start_lab(folder, port, token, log)
        page = None
        try:
            page = browser(chromium, driver)
            page.get(f"http://127.0.0.1:{port}/lab/tree/{lesson.name}?token={token}")
            print(f"JupyterLab on port {port}, lesson {lesson.name} open; running every cell", flush=True)
            try:
                run_all_cells(page, args.timeout)
            except Exception as e:  # a timeout or a missing menu: keep what the page showed, for diagnosis
                page.save_screenshot(str(out / "screenshot.png"))
                (out / "page.txt").write_text(page.find_element("css selector", "body").text)
                print(f"FAIL running the cells: {type(e).__name__} after {time.time() - started:.0f} s; "
                      f"see {out / 'screenshot.png'} and {out / 'page.txt'}")
                return 1
            return check_page(page, out, time.time() - started)
        finally:
            if page is not None:
                page.quit()
            lab.terminate()
            lab.wait(timeout=30)


def check_page(page, out: Path, seconds: float) -> int:
    """The checks on the finished page; writes screenshot.png and page.txt; returns the exit code."""
    from selenium.webdriver.common.by import By

    text = page.find_element(By.CSS_SELECTOR, ".jp-Notebook").text
    (out / "page.txt").write_text(text)
    sliders = page.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-slider")
    errors = page.find_elements(By.CSS_SELECTOR,
                                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] pre")
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "Error" in e.text.split("\n")[-1]]
    if sliders:
        page.execute_script("arguments[0].scrollIntoView({block: 'center'});", sliders[0])
        time.sleep(1)
    page.save_screenshot(str(out / "screenshot.png"))
    checks = {"every cell ran without an error": not tracebacks,
              "no 'Error displaying widget'": "Error displaying widget" not in text,
              "the explorer's slider rendered": bool(sliders)}
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    for t in tracebacks[:3]:
        print("  " + t[-400:])
    print(f"browser check: {'passed' if all(checks.values()) else 'FAILED'} in {seconds:.0f} s; "
          f"screenshot {out / 'screenshot.png'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
