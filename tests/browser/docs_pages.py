"""Issue 16: the API documentation pages render every operation in a real browser, with
nothing in the browser console (no CSP refusal, no failed asset, no script error)."""

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = "docs-screenshots"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operation_count(server):
    """How many operations the OpenAPI document declares: each page must render them all."""
    status, spec = server.request("GET", "/api/schema/?format=json")
    if status != 200 or not isinstance(spec, dict):
        raise RuntimeError(f"/api/schema/?format=json answered {status}")
    return sum(
        1 for item in spec.get("paths", {}).values() for m in item if m.lower() in HTTP_METHODS
    )


def rendered(driver, selector, want):
    """Waits (up to 60 s: the pages parse a 2 MB bundle) for `want` elements matching
    `selector`; the number found at the end."""
    try:
        WebDriverWait(driver, 60, poll_frequency=0.5).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, selector)) >= want
        )
    except Exception:  # a timeout: report the count reached
        pass
    return len(driver.find_elements(By.CSS_SELECTOR, selector))


def run(server, browser, failures):
    want = operation_count(server)
    failures.check(want >= 50, f"the OpenAPI document declares many operations ({want})")
    browser.console_errors()  # start clean
    pages = (
        # Swagger UI: one `.opblock` per operation (every tag is expanded by default).
        ("/api/schema/swagger-ui/", ".opblock", "swagger-ui"),
        # The alias of the same page.
        ("/api/docs/", ".opblock", "swagger-ui-alias"),
        # Redoc: one section per operation in the middle panel.
        ("/api/schema/redoc/", "[data-section-id^='operation/']", "redoc"),
    )
    for path, selector, shot in pages:
        browser.get(path)
        got = rendered(browser.driver, selector, want)
        failures.check(got == want, f"{path} renders {got} of {want} operations ({selector})")
        if shot == "redoc":
            menu = len(browser.driver.find_elements(By.CSS_SELECTOR, "li[data-item-id*='operation/']"))
            failures.check(menu == want, f"{path} lists {menu} of {want} operations in its menu")
        else:
            # The page is the app, not an error: the schema's title is shown.
            title = browser.driver.find_elements(By.CSS_SELECTOR, ".info .title")
            failures.check(bool(title) and "Gatehouse" in title[0].text, f"{path} shows the API title")
        errors = browser.console_errors()
        failures.check(not errors, f"{path} leaves no error in the browser console {errors}")
        browser.screenshot(SHOTS, shot)
