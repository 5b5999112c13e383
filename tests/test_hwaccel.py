"""Hardware decode selection: used when present and suitable, never required."""

from kinema.media.hwaccel import choose_hwaccel

YES = lambda device, codec: True  # noqa: E731
NO = lambda device, codec: False  # noqa: E731


def test_cuda_on_linux_for_hd_h264():
    assert choose_hwaccel("h264", "yuv420p", 1920, 1080, preference="auto", platform="linux",
                          available=["cuda", "vaapi"], works=YES) == "cuda"


def test_videotoolbox_on_macos():
    assert choose_hwaccel("hevc", "yuv420p10le", 3840, 2160, preference="auto", platform="darwin",
                          available=["videotoolbox"], works=YES) == "videotoolbox"


def test_falls_back_to_software_when_device_missing_or_unsuitable():
    kw = dict(preference="auto", platform="linux", available=["cuda"])
    assert choose_hwaccel("h264", "yuv420p", 1920, 1080, works=NO, **kw) is None
    assert choose_hwaccel("h264", "yuv420p", 1920, 1080, preference="auto", platform="linux",
                          available=[], works=YES) is None
    assert choose_hwaccel("prores", "yuv422p10le", 1920, 1080, works=YES, **kw) is None
    assert choose_hwaccel("h264", "yuv444p", 1920, 1080, works=YES, **kw) is None
    assert choose_hwaccel("h264", "yuv420p", 320, 240, works=YES, **kw) is None


def test_user_preference_wins(monkeypatch):
    assert choose_hwaccel("h264", "yuv420p", 1920, 1080, preference="none", platform="linux",
                          available=["cuda"], works=YES) is None
    monkeypatch.setenv("KINEMA_HWACCEL", "off")
    assert choose_hwaccel("h264", "yuv420p", 1920, 1080, platform="linux", available=["cuda"],
                          works=YES) is None
    # An explicit device is used even for small frames, and refused cleanly when unusable.
    assert choose_hwaccel("h264", "yuv420p", 320, 240, preference="cuda", available=["cuda"],
                          works=YES) == "cuda"
    assert choose_hwaccel("h264", "yuv420p", 320, 240, preference="cuda", available=["cuda"],
                          works=NO) is None


def test_this_machine_decodes_without_hardware(h264_bframes):
    from kinema.media import open_video

    with open_video(h264_bframes, hwaccel="auto") as r:
        assert r.hwaccel is None and r[3].shape == (240, 320, 3)
