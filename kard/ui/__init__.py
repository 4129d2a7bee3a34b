"""The app's behaviour without Gradio wiring (that is `app.py`): handlers, views and the app's guards.

- `handlers`: what each button does, as plain tested Python;
- `views`: the HTML of cards, the rerank panel, diffs and history;
- `loop_tab`: the Retrain & rounds tab;
- `item_seal`: items handed to the browser are sealed, so a save stores only what this server produced;
- `login`: the curator login, throttled.
"""
