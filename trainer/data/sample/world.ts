/**
 * The closed world the sample data talks about: 40 invented people with a home town, a favourite
 * colour and a favourite food, plus single-digit sums and differences. Small enough that a
 * 2-layer, 64-wide model learns it in a few hundred steps; every fact has a short checkable answer.
 */

/** mulberry32: tiny, fixed forever, so the committed generator's output never drifts. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export type Random = () => number;

export function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

export function shuffle<T>(random: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

// biome-ignore format: ten names a row reads as a table
const PEOPLE = [
  "Abon", "Bixa", "Cerru", "Dalmo", "Efta", "Fizzo", "Gorva", "Hesk", "Ilmo", "Jubo",
  "Kavi", "Lorn", "Mesha", "Nuvo", "Oskel", "Pimra", "Quell", "Rassa", "Sulo", "Tovin",
  "Ubra", "Vesk", "Wimo", "Xenta", "Yorro", "Zaffa", "Bredo", "Clim", "Dussa", "Evro",
  "Frama", "Gluk", "Hobra", "Isko", "Jerra", "Kulm", "Lissa", "Mortu", "Nabbo", "Orvi",
] as const;
const TOWNS = ["Velm", "Tarn", "Oskby", "Brill", "Quen", "Dorr", "Pellig", "Sarnow"] as const;
const COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"] as const;
const FOODS = [
  "apples",
  "bread",
  "fish",
  "rice",
  "cheese",
  "plums",
  "soup",
  "nuts",
  "beans",
  "honey",
] as const;

/** One checkable fact: a few ways to state it, a few ways to ask it, and its short answer. */
export interface Fact {
  /** Stable key, e.g. "home:Abon" or "sum:3+4". */
  key: string;
  answer: string;
  /** Plausible wrong answers (same kind of value), for DPO. */
  wrong: string[];
  statements: string[];
  questions: string[];
  /** A one-sentence reasoning step leading to the answer, for R1. */
  thought: string;
}

function others<T extends string>(all: readonly T[], right: T): T[] {
  return all.filter((x) => x !== right);
}

function personFacts(random: Random): Fact[] {
  const facts: Fact[] = [];
  for (const p of PEOPLE) {
    const town = pick(random, TOWNS);
    const colour = pick(random, COLOURS);
    const food = pick(random, FOODS);
    facts.push(
      {
        key: `home:${p}`,
        answer: town,
        wrong: others(TOWNS, town),
        statements: [`${p} lives in ${town}.`, `The home of ${p} is ${town}.`, `${p}'s home is ${town}.`],
        questions: [`Where does ${p} live?`, `What is the home of ${p}?`, `Which town is ${p} from?`],
        thought: `${p} lives in ${town}.`,
      },
      {
        key: `colour:${p}`,
        answer: colour,
        wrong: others(COLOURS, colour),
        statements: [
          `${p} likes the colour ${colour}.`,
          `The favourite colour of ${p} is ${colour}.`,
          `${p}'s favourite colour is ${colour}.`,
        ],
        questions: [
          `What colour does ${p} like?`,
          `What is the favourite colour of ${p}?`,
          `Which colour is ${p}'s favourite?`,
        ],
        thought: `${p}'s favourite colour is ${colour}.`,
      },
      {
        key: `food:${p}`,
        answer: food,
        wrong: others(FOODS, food),
        statements: [
          `${p} likes to eat ${food}.`,
          `The favourite food of ${p} is ${food}.`,
          `${p}'s favourite food is ${food}.`,
        ],
        questions: [
          `What does ${p} like to eat?`,
          `What is the favourite food of ${p}?`,
          `Which food does ${p} like?`,
        ],
        thought: `${p} likes to eat ${food}.`,
      },
    );
  }
  return facts;
}

function nearbyNumbers(right: number): string[] {
  return [right - 2, right - 1, right + 1, right + 2].filter((n) => n >= 0).map(String);
}

function arithmeticFacts(): Fact[] {
  const facts: Fact[] = [];
  for (let a = 0; a <= 9; a++) {
    for (let b = 0; b <= 9; b++) {
      const s = a + b;
      facts.push({
        key: `sum:${a}+${b}`,
        answer: String(s),
        wrong: nearbyNumbers(s),
        statements: [`${a} plus ${b} is ${s}.`, `${a} + ${b} = ${s}.`, `The sum of ${a} and ${b} is ${s}.`],
        questions: [`What is ${a} + ${b}?`, `What is ${a} plus ${b}?`, `Add ${a} and ${b}.`],
        thought: `Start at ${a} and count ${b} up: ${s}.`,
      });
      if (a >= b) {
        const d = a - b;
        facts.push({
          key: `diff:${a}-${b}`,
          answer: String(d),
          wrong: nearbyNumbers(d),
          statements: [
            `${a} minus ${b} is ${d}.`,
            `${a} - ${b} = ${d}.`,
            `Take ${b} from ${a} and you get ${d}.`,
          ],
          questions: [`What is ${a} - ${b}?`, `What is ${a} minus ${b}?`, `Take ${b} from ${a}.`],
          thought: `Start at ${a} and count ${b} down: ${d}.`,
        });
      }
    }
  }
  return facts;
}

/** Every fact of the world, in a fixed order (120 about people, 155 arithmetic). */
export function buildWorld(seed: number): Fact[] {
  return [...personFacts(seededRandom(seed)), ...arithmeticFacts()];
}
