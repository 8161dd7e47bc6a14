"""OpenJTalk synthesis in a short-lived child process (issue 14: a cold episode under 400 MB).

OpenJTalk's front end maps its MeCab dictionary and, for the readings of kanji with several readings,
Sudachi's system dictionary (~120 MB resident once touched); the library keeps both for the life of the
process. Synthesized in the episode process, they stayed resident through assembly and mastering, on top
of the flow's own memory. Here a child process (a fresh interpreter: no Prefect, no flow state) fills the
utterance cache with the same `synthesize_to_cache` and exits, so all of that memory is gone before
assembly starts. The readings are unchanged: the same library, same settings, same cache files.

    python -m zundacast.audio.tts_child   < request JSON on stdin; one result JSON line on stdout
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from zundacast.audio.utterances import Utterance, cached_paths, synthesize_to_cache
from zundacast.show import OpenJTalkConfig
from zundacast.voices import PermanentVoiceError, VoiceError
from zundacast.voices.openjtalk import OpenJTalkVoice

_RESULT = "zundacast-tts-result "  # prefix of the child's answer line (a library may print on stdout too)


def synthesize_to_cache_in_child(voice: OpenJTalkVoice, utterances: list[Utterance], cache_root: Path,
                                 attempts: int = 4, backoff_s: float = 0.5) -> tuple[list[Path], int]:
    """`synthesize_to_cache` for an `OpenJTalkVoice`, run in a child process (none when all is cached).

    Raises what the child raised: PermanentVoiceError / VoiceError with the same message; a child that
    died without answering (killed, out of memory) is a VoiceError naming its exit status.
    """
    if "pyopenjtalk" in sys.modules:  # the cache key needs its version; importing it just for that costs more
        paths = cached_paths(voice, utterances, cache_root)
        if paths is not None:
            return paths, 0
    request = {"config": voice.config.model_dump(mode="json"), "concurrency": voice.concurrency,
               "utterances": [u.model_dump(mode="json") for u in utterances], "cache_root": str(cache_root),
               "attempts": attempts, "backoff_s": backoff_s}
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "zundacast.audio.tts_child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, text=True, encoding="utf-8")
    try:
        out, _ = proc.communicate(json.dumps(request, ensure_ascii=False))
    finally:
        if proc.poll() is None:  # interrupted (cancelled run, Ctrl-C): the child goes too
            proc.kill()
            proc.wait()
    answer = next((line[len(_RESULT):] for line in reversed(out.splitlines()) if line.startswith(_RESULT)),
                  None)
    if answer is None:
        raise VoiceError(f"openjtalk: the synthesis process ended without an answer (exit status "
                         f"{proc.returncode}); run the stage again")
    result = json.loads(answer)
    if "error" in result:
        kind, message = result["error"]["type"], result["error"]["message"]
        if kind == "permanent":
            raise PermanentVoiceError(message)
        if kind == "voice":
            raise VoiceError(message)
        raise VoiceError(f"openjtalk: the synthesis process failed: {kind}: {message}")
    return [Path(path) for path in result["paths"]], int(result["synthesized"])


def _serve(request: dict[str, Any]) -> dict[str, Any]:
    voice = OpenJTalkVoice(OpenJTalkConfig(**request["config"]), concurrency=request["concurrency"])
    utterances = [Utterance(**u) for u in request["utterances"]]
    paths, synthesized = synthesize_to_cache(voice, utterances, Path(request["cache_root"]),
                                             attempts=request["attempts"], backoff_s=request["backoff_s"])
    return {"paths": [str(path) for path in paths], "synthesized": synthesized}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # retry warnings reach stderr
    try:
        result = _serve(json.loads(sys.stdin.read()))
    except Exception as exc:  # every failure goes back to the parent, which raises it in the stage
        kind = ("permanent" if isinstance(exc, PermanentVoiceError)
                else "voice" if isinstance(exc, VoiceError) else type(exc).__name__)
        result = {"error": {"type": kind, "message": str(exc)}}
    print(_RESULT + json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
