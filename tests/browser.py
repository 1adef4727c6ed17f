"""Headless Chromium for page tests: Debian's chromium and chromium-driver, driven by selenium.

`make browser` installs them (`apt-get install chromium chromium-driver`);
where they are missing the tests that need them skip, saying so. Nothing is
downloaded: selenium is pointed at /usr/bin/chromedriver and the browser at
/usr/bin/chromium, started with its network features off, in DevTools' offline mode, with a
fresh profile, and pages are opened from file:// URLs.
"""

import os
import pathlib
import shutil
import tempfile
import time

import pytest

CHROMIUM = os.environ.get("KERAS_ATTENTION_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KERAS_ATTENTION_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def skip_reason():
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM) or not os.path.exists(CHROMEDRIVER):
        return (
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
            "run `make browser` (apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (the `dev` extra: pip install -e '.[dev]')"
    return None


def start_chromium(width=1280, height=900):
    """A selenium `webdriver.Chrome` on headless Debian Chromium with a fresh profile."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver._profile_dir = profile  # removed by `stop_chromium`
    # The network off (DevTools' offline mode): a page that needed anything from it would fail.
    driver.set_network_conditions(
        offline=True, latency=0, download_throughput=0, upload_throughput=0
    )
    return driver


def stop_chromium(driver):
    driver.quit()
    shutil.rmtree(getattr(driver, "_profile_dir", ""), ignore_errors=True)


def open_page(driver, path, timeout=60):
    """Opens `path` from a file:// URL and waits until the page says it is ready.

    Returns:
        Seconds from the request to the page's `data-ready` flag.
    """
    started = time.perf_counter()
    driver.get(pathlib.Path(path).resolve().as_uri())
    while time.perf_counter() - started < timeout:
        state = driver.execute_script(
            "return [document.body && document.body.dataset.ready, "
            "document.getElementById('error') && document.getElementById('error').textContent]"
        )
        if state[0] == "1":
            return time.perf_counter() - started
        if state[1]:
            raise AssertionError(
                f"the page failed: {state[1]}; console: {console_messages(driver)}"
            )
        time.sleep(0.02)
    raise AssertionError(
        f"the page was not ready after {timeout} s; console: {console_messages(driver)}"
    )


def console_messages(driver, level=None):
    """The browser console since the last call, as `(level, message)` pairs."""
    entries = driver.get_log("browser")
    return [(e["level"], e["message"]) for e in entries if level is None or e["level"] == level]


def save_screenshot(driver, path, colors=96):
    """A screenshot of the window as a small palette PNG (a few tens of KB)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path
