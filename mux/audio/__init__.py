"""Sound that follows the active persona (``audio = true``): the policy and the sound server.

Theory. A persona with ``audio = true`` has a sound card (``intel-hda`` with
``hda-duplex``) whose output and microphone are streams on the host's sound server
(PulseAudio, or PipeWire's PulseAudio server), one of each per persona, made by QEMU's
``pa`` backend and named after the persona (:func:`mux.guest.hardware.audio_argv`).
mux never touches the guests' sound: it sets each stream's mute and volume on the
server, so only the active persona is heard and only it has the microphone.

- :mod:`mux.audio.policy` (pure): what each stream should be (live, muted, ducked 20 dB
  down) and each persona's state, and PulseAudio's cubic volume scale.
- :mod:`mux.audio.server`: the one seam to the sound server (``pulsectl-asyncio`` over
  libpulse, imported lazily: mux runs without libpulse, its personas without sound).
- :mod:`mux.audio.follow`: the loop that applies the policy at every switch and to every
  stream that appears, and survives the server going away.
"""
