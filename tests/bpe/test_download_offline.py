"""Downloads without a network fail in one line that names what was fetched and what to do instead."""
import urllib.error
import urllib.request

import pytest

import bpe
from gpt.finetune import data_classify


@pytest.fixture
def offline(monkeypatch):
    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_download_gpt2_offline_is_one_line_naming_the_url_and_the_way_out(offline, tmp_path):
    with pytest.raises(ConnectionError) as e:
        bpe.download_gpt2(tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert bpe.gpt2_files.GPT2_URL + "encoder.json" in message
    assert "Temporary failure in name resolution" in message
    assert str(tmp_path) in message                    # where to put the files by hand
    assert list(tmp_path.iterdir()) == []              # nothing half-written


def test_sms_spam_download_offline_is_one_line(offline, tmp_path):
    with pytest.raises(ConnectionError) as e:
        data_classify.download_sms_spam(tmp_path / "sms.tsv")
    assert "\n" not in str(e.value) and data_classify.SMS_SPAM_URL in str(e.value)
    assert not (tmp_path / "sms.tsv").exists()
