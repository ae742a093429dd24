// Ollama's JavaScript client and the OpenAI client against a running
// server: OLLAMA_HOST (host:port) and MODEL from the environment. Prints one
// JSON object with what each call returned; the Go test (TestClients)
// asserts on it. Any error exits 1 with the message.
import { Ollama } from 'ollama'
import OpenAI from 'openai'

const host = `http://${process.env.OLLAMA_HOST}`
const model = process.env.MODEL
const out = {}

const ollama = new Ollama({ host })
out.version = (await ollama.version()).version
out.list = (await ollama.list()).models.map((m) => m.name)
const gen = await ollama.generate({ model, prompt: 'hello', options: { num_predict: 8 } })
out.generate = { response: gen.response, done: gen.done, eval_count: gen.eval_count }
let streamed = ''
for await (const part of await ollama.chat({ model, messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 8 } })) {
  streamed += part.message.content
}
out.chat_stream = streamed
out.ps = (await ollama.ps()).models.map((m) => ({ name: m.name, size_vram: m.size_vram, library: m.library, library_decided_by: m.library_decided_by }))

const openai = new OpenAI({ baseURL: `${host}/v1`, apiKey: 'unused' })
const completion = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 })
out.openai_chat = { content: completion.choices[0].message.content, finish_reason: completion.choices[0].finish_reason }
out.openai_models = (await openai.models.list()).data.map((m) => m.id)

console.log(JSON.stringify(out))
