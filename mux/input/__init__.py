"""Input: physical and recorded sources, event types, key maps, hotkeys and the router."""
