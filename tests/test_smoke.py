import requests

from cdp.processing.models import Event
from cdp.processing.processor import process_pending


def test_tracking_api_track_is_stored_after_processing(cdp_server, source):
    response = requests.post(
        f"{cdp_server.url}/v1/track",
        auth=(source.write_key, ""),
        json={"userId": "u1", "event": "Signed Up"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    process_pending()
    event = Event.objects.get(source=source)
    assert (event.type, event.event, event.user_id) == ("track", "Signed Up", "u1")
