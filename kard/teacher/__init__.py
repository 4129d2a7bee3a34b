"""The teacher box of the KARD figure: rationales for training questions, with the gold answer shown.

- `client`: the live teacher (any OpenAI-compatible endpoint through the `openai` client);
- `prompts`: what the teacher is asked and how its answer is read;
- `cache`: completions kept in SQLite, so a job never pays twice and resumes;
- `errors`: the client's failures turned into errors that name the fix;
- `gate`: how many requests are in flight (backs off on 429s);
- `deadline`: keep-alive bytes do not hold a request past the timeout;
- `recorded`: rationales that come with the data (FLAN, MedQA GPT-4) instead of a live teacher.
"""
