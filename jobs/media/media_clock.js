// Media on the video's clock: tells the recorder when a playing <video> or <audio> runs off the page's clock.
// Installed (jobs/media/virtual_time.py, media_clock_script) in every document of a page captured on the video's
// clock, before the page's own scripts; __BINDING__ is replaced by the recorder's binding name.
//
// The page's clock (timers, requestAnimationFrame, performance.now()) moves one frame's time per frame the recorder
// renders, as fast as the machine can while the page stands still. A video without sound follows it; a media
// element with an audio track plays on the audio device's clock, the wall's, so in the video it plays slowly (about
// half speed on these machines). Every half second of the page's clock, each playing element's media time is
// compared with the page's: more than a quarter apart over that half second, the recorder is told once, and it
// captures the feature again by the screencast (capture_notes: screencast_instead=media_off_clock).
//
// The page can reach all of this (it runs in the page's world, where the page calls play()): what it can do with
// it is make its own feature be captured by the screencast, or hide its own drift. Nothing beyond its own video.
(() => {
  const W = window;
  const report = W['__BINDING__'];
  if (typeof report !== 'function' || typeof HTMLMediaElement === 'undefined') return;
  const CHECK_MS = 500;
  const TOLERANCE = 0.25;  // of the page's time: a media frame (40 ms at 25 fps) is 8 % of a check
  const playing = new Set();
  const last = new Map();  // element -> [media time (s), page time (ms)]
  let timer = 0;
  let told = false;

  const check = () => {
    const now = performance.now();
    for (const el of playing) {
      if (el.paused || el.ended) {
        playing.delete(el);
        last.delete(el);
        continue;
      }
      if (el.seeking || el.readyState < 3) {  // buffering or seeking: a stall both captures show alike
        last.delete(el);
        continue;
      }
      const before = last.get(el);
      last.set(el, [el.currentTime, now]);
      if (!before) continue;
      const page = (now - before[1]) / 1000 * el.playbackRate;
      const media = el.currentTime - before[0];
      // A jump back (a loop whose seek went unseen, a seek made by script) says nothing about the clock.
      if (!told && page > 0 && media >= 0 && Math.abs(media - page) > TOLERANCE * page) {
        told = true;
        try { report({media_s: media, page_s: page}); } catch (e) { /* the binding is gone: nothing to tell */ }
      }
    }
    if (!playing.size) {
      clearInterval(timer);
      timer = 0;
    }
  };
  const known = new WeakSet();
  const forget = (event) => last.delete(event.target);
  const watch = (el) => {
    if (told || !(el instanceof HTMLMediaElement)) return;
    if (!known.has(el)) {
      known.add(el);
      // A seek (a loop's too), a new rate or a stall starts the comparison afresh: media time moves by itself then.
      for (const type of ['seeking', 'seeked', 'ratechange', 'waiting']) el.addEventListener(type, forget);
    }
    playing.add(el);
    if (!timer) timer = setInterval(check, CHECK_MS);
  };
  // Elements in the document announce 'playing' (it does not bubble: caught on the way down); one made by script
  // and never added to it (new Audio()) is caught as it is asked to play.
  document.addEventListener('playing', (event) => watch(event.target), true);
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function (...args) {
    const started = play.apply(this, args);
    Promise.resolve(started).then(() => watch(this), () => {});
    return started;
  };
})();
