from __future__ import annotations

from jobs.media.errors import NavigationError, StepError


def test_a_step_error_names_feature_step_action_selector_and_cause() -> None:
    err = StepError(
        feature_title="Broken", step_number=2, action="wait_for", target="#never",
        cause="selector did not appear within 3000 ms",
    )
    assert str(err) == (
        'Feature "Broken" step 2 (wait_for "#never"): selector did not appear within 3000 ms'
    )
    assert err.permanent is True


def test_navigation_errors_are_retried_unless_the_server_said_4xx() -> None:
    assert NavigationError(url="http://x/", cause="net::ERR_CONNECTION_REFUSED").permanent is False
    assert NavigationError(url="http://x/", status=503, cause="HTTP 503").permanent is False
    gone = NavigationError(url="http://x/a", status=404, cause="HTTP 404", feature_title="F",
                           step_number=1)
    assert gone.permanent is True
    assert str(gone) == 'Feature "F" step 1 (goto "http://x/a"): HTTP 404'
