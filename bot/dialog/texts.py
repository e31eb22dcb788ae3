"""Everything the bot says to a job seeker that is not office data: the Japanese source of the catalogue.

Polite, concise Japanese for a phone screen. Each constant is a catalogue key (a dict's or a tuple of
pairs' entries are `NAME.key`); `bot/locale/<lang>/LC_MESSAGES/hwbot.po` translate them (issue 14,
`bot.i18n`). Read them as attributes at the moment they are said, `texts.GREETING`: the module answers
in the language of the turn (`bot.i18n.using`), and in Japanese outside one. `from bot.dialog.texts
import GREETING` would keep the Japanese of import time; staff-facing code that wants the Japanese on
purpose says `texts.japanese("NO_OFFICE")`. COMMAND_ALIASES is Japanese only: each language has its own
typed phrases in `bot/locale/<lang>/aliases.yaml`.
"""

import sys
import types
from typing import Any

from bot import i18n

GREETING = (
    "こんにちは。ハローワークのオンライン職業相談（ビデオ通話での職業相談）の予約をお手伝いします。"
    "ボタンを押して進めてください。"
)
GREETING_OFFICE = (
    "こんにちは。{office}のオンライン職業相談（ビデオ通話での職業相談）の予約をお手伝いします。"
    "ボタンを押すか、文字で入力して進めてください。"
)
CHOOSE_OFFICE = "ご利用になるハローワークを選んでください。"
MENU = "ご用件を選んでください。"
HELP = (
    "【使い方】\n"
    "・質問にはボタンを押すか、文字で入力してお答えください。\n"
    "・「戻る」で一つ前の質問に、「最初から」で最初に戻ります。\n"
    "・「やめる」で入力内容を破棄して終了します。\n"
    "・「予約の確認」で予約の確認・日時の変更・キャンセルができます。\n"
    "・「担当者と話したい」でハローワークの担当者におつなぎします。\n"
    "・「データを削除」でお名前などのデータを削除できます。"
)
EXPIRED = (
    "前回のお手続きは{minutes}分以上操作がなかったため、入力内容を消去しました。"
    "お手数ですが、最初からお願いします。"
)
QUIT = "お手続きを終了しました。入力いただいた内容は破棄しました。またいつでもどうぞ。"
STALE = "このボタンは前の質問のものです。いまの質問にお答えください。"
STALE_IDLE = "このボタンのお手続きはすでに終わっています。"
MEDIA = "スタンプや画像、位置情報にはお答えできません。ボタンを押すか、文字で入力してください。"
USE_BUTTONS = "下のボタンからお選びください。"
NO_BACK = "これより前の質問はありません。"
STUCK = "うまく進まないようですので、ハローワークの担当者におつなぎします。"

ASK_NAME = "お名前（フルネーム）を入力してください。\n例：山田 花子"
ASK_NUMBER = (
    "求職番号を入力してください。\n"
    "ハローワーク受付票に「12345-12345678」の形（5けた・ハイフン・8けた）で印字されています。"
)
ASK_EMAIL = "ご連絡先のメールアドレスを入力してください。\n例：hanako@example.jp"
ASK_PHONE = "ご連絡先の電話番号を入力してください。\n例：090-1234-5678"
ASK_TOPIC = "ご相談の内容を選んでください。"
ASK_INTERPRETER = (
    "相談に通訳の方や介助者の方は同席されますか？\n"
    "（同席される場合は、事前にハローワークへお伝えする必要があります）"
)
INTERPRETER_CHOICES = (
    ("none", "同席しない"),
    ("interpreter", "通訳が同席する"),
    ("caregiver", "介助者が同席する"),
    ("both", "通訳と介助者が同席"),
)
CHECK_PROGRESS = "（確認 {index}/{total}）"

INELIGIBLE = "申し訳ありません。オンライン職業相談の対象外となります。"
INELIGIBLE_HINT = "回答を間違えた場合は「戻る」でやり直せます。"

CHOOSE_SLOT = "ご希望の日時を選んでください（{office}・{length}）。\n日付を入力して探すこともできます（例：12/3）。"
NO_SLOTS = "申し訳ありません。いまご予約いただける枠がありません（予約は{deadline}、{window}か月先まで受け付けています）。"
NO_SLOTS_AFTER = "{day}以降に空いている枠はありません。"
DAY_CLOSED = "{day}は{reason}のため、相談を行っていません。"
DAY_NO_GRID = "{day}はオンライン相談を行っていない曜日です。"
DAY_PAST_DEADLINE = "{day}の予約受付は締め切りました（{deadline}）。"
DAY_OUTSIDE_WINDOW = "{day}はまだ予約を受け付けていません（予約は{last}まで受け付けています）。"
DAY_PAST = "{day}はすでに過ぎています。"
DAY_FULL = "{day}の枠はすべて埋まっています。"
DATE_NOT_UNDERSTOOD = "日付がわかりませんでした。「12/3」や「12月3日」のように入力するか、ボタンからお選びください。"
MORE_SLOTS = "次の日程を見る"
EARLIER_SLOTS = "前の日程に戻る"
OTHER_TIMES = "ほかの時間を相談したい"
OTHER_TIMES_DONE = "ほかの時間をご希望であることを担当者にお伝えしました。"
SLOT_TAKEN = "申し訳ありません。{slot}の枠は、ほかの方のご予約で埋まってしまいました。別の日時をお選びください。"
SLOT_GONE = "申し訳ありません。{slot}の枠はご予約いただけなくなりました（締め切りを過ぎたか、満席になりました）。別の日時をお選びください。"

TERMS_INTRO = "ご予約の前に、利用規約の要点をご確認ください。"
CONSENT = "同意する"
DECLINE = "同意しない"
DECLINED = (
    "利用規約に同意いただけない場合は、オンライン職業相談をご予約いただけません。"
    "入力いただいた内容は破棄しました。ハローワークの窓口でのご相談もご利用いただけます。"
)

CONFIRM_TITLE = "ご予約内容の確認"
BOOK = "この内容で予約する"
CHANGE = "内容を変更する"
QUIT_LABEL = "やめる"
CHOOSE_CHANGE = "変更する項目を選んでください。"
BOOKED_TITLE = "ご予約を受け付けました"
BOOKED_TITLE_CONFIRMED = "ご予約が完了しました"
BOOKED_PENDING = "ハローワークからのご連絡をもって予約確定となります。"
# Which state a booking is in, as the booked card, 予約の確認, reminders and the console say it
# (by `office_confirmation`; a missing value is an older booking: confirmed).
STATE_LABEL = "状態"
STATE_REQUESTED = "申込み中・事業所の確認待ち"
STATE_CONFIRMED = "確定"
CONFIRMATION_STATES = {
    "pending": STATE_REQUESTED,
    "proposed": "申込み中・別の日時をご提案中",
    "awaiting_consent": "申込み中・新しい規約への同意待ち",
    "confirmed": STATE_CONFIRMED,
    "not_needed": STATE_CONFIRMED,
}
# The office of a user who has not chosen one yet, as staff read it (console, notices, simulator).
NO_OFFICE = "窓口未選択"
ALREADY_BOOKED = (
    "{office}には、すでに次のご予約があります。\n{bookings}\n"
    "別の日時をご希望の場合は、いまのご予約をキャンセルしてからお申し込みください。"
)

NO_BOOKINGS = "現在、ご予約はありません。"
YOUR_BOOKINGS = "ご予約の一覧です。"
CANCEL_CONFIRM = "次のご予約をキャンセルしますか？\n{booking}"
CANCEL_YES = "キャンセルする"
CANCEL_NO = "キャンセルしない"
CANCELLED = "ご予約をキャンセルしました。\n{booking}\nまたのご利用をお待ちしています。"
CANCEL_KEPT = "キャンセルを取りやめました。ご予約はそのままです。"
CANCEL_ALREADY = "このご予約はすでにキャンセルされています。"
CANCEL_NOT_FOUND = "このご予約は見つかりませんでした。"
CANCEL_PHONE_ONLY = "{office}のキャンセルは、お電話でのみ受け付けています。お手数ですがお電話ください。"
CANCEL_SAME_DAY = "当日のキャンセルは、お電話でのみ受け付けています。お手数ですが{office}へお電話ください。"
CANCEL_PAST = "このご予約の日時はすでに過ぎています。"
# The office's email address, where it publishes one (Noto); LINE cannot open mailto: links, so it is text.
EMAIL_CONTACT = "{office}のメールアドレス：{email}"
EMAIL_APPLY = "メールでもお申し込みいただけます：{email}{subject}"
EMAIL_SUBJECT = "（件名「{subject}」）"
EMAIL_CANCEL = "キャンセルのメール：{email}"
CANCEL_NO_PHONE = (
    "{office}のキャンセルはお電話で受け付けていますが、このトークでご案内できる電話番号がないため、"
    "担当者におつなぎします。担当者がキャンセルのお手続きをします。"
)

# Changing the date of a booking (日時変更 from 予約の確認).
CHANGE_DATE_LABEL = "日時変更"  # the button is "日時変更 11/25 10:00"
CHANGE_DATE_PROMPT = "日時を変更する場合は、下のボタンを押してください。"
CHANGE_PHONE_ONLY = "{office}の日時の変更は、お電話でのみ受け付けています。お手数ですがお電話ください。"
CHANGE_SAME_DAY = "当日の日時の変更は、お電話でのみ受け付けています。お手数ですが{office}へお電話ください。"
CHANGE_NO_PHONE = (
    "{office}の日時の変更は、このトークでは受け付けていないため、担当者におつなぎします。"
    "担当者と新しい日時をご相談ください。"
)
MOVE_INTRO = "次のご予約の日時を変更します。\n{booking}"
MOVE_SAME_SLOT = "いまのご予約と同じ日時です。別の日時をお選びください。"
MOVE_CONFIRM = "次のとおり日時を変更しますか？\n変更前：{old}\n変更後：{new}"
MOVE_PENDING = "変更後の日時は、ハローワークからのご連絡をもって確定します。"
MOVE_YES = "変更する"
MOVE_OTHER = "別の日時を選ぶ"
MOVE_NO = "変更しない"
MOVED = "ご予約の日時を変更しました。予約番号も新しくなりました。\n{booking}"
MOVE_KEPT = "日時の変更を取りやめました。ご予約はそのままです。"
MOVE_GONE = "このご予約は、キャンセルされたか日時が変更されたため、変更できません。"
MOVE_PROPOSED = (
    "このご予約には、ハローワークから別の日時のご提案が届いています。"
    "お手数ですが、ご提案へのお返事をお願いします。"
)

HANDOFF = "担当者にお伝えしました。{when}、担当者からこのトークでご連絡します。"
HANDOFF_CALL = "お急ぎの場合はお電話ください。"
WHEN_TODAY = "本日{close}までに"
WHEN_DAY = "{day} {open}以降に"
WHEN_OFFICE_HOURS = "開庁時間内に"
PAUSED = "ただいま担当者におつなぎしています。{when}、担当者からご連絡します。"
PAUSED_HINT = "自動応答でのお手続きに戻る場合は、下のボタンを押してください。"
RESUMED = "自動応答に戻りました。お手続きを続けます。"
STAFF_RESUMED = "担当者の対応が終わりました。引き続き、こちらでお手続きいただけます。"
# The handoff thread: what a waiting user writes goes to staff; staff answer by push.
THREAD_KEPT = "メッセージを担当者にお伝えしました。{when}、担当者がこのトークでお返事します。"
STAFF_REPLY = "【{office} 担当者より】\n{text}"
NO_OFFICE_SENDER = "ハローワーク"  # STAFF_REPLY's {office} when the user had not chosen an office yet
# How staff see a message without text (the LINE message type).
MEDIA_NOTES = {"sticker": "（スタンプ）", "image": "（画像）", "video": "（動画）", "audio": "（音声）",
               "file": "（ファイル）", "location": "（位置情報）"}
MEDIA_NOTE_OTHER = "（テキスト以外のメッセージ）"

COMMANDS = {
    "restart": "最初から",
    "quit": "やめる",
    "back": "戻る",
    "help": "ヘルプ",
    "handoff": "担当者と話したい",
    "bookings": "予約の確認",
    "cancel": "キャンセル",
    "book": "予約する",
    "menu": "メニュー",
    "resume": "手続きに戻る",
    "resume_bot": "自動応答に戻る",
    "erase": "データを削除",
    "reschedule": "日時を変更する",
    "language": "言語 / Language",
}
# Other ways people type the same commands.
COMMAND_ALIASES = {
    "はじめから": "restart",
    "最初からやり直す": "restart",
    "やり直す": "restart",
    "リセット": "restart",
    "中止": "quit",
    "終了": "quit",
    "やめます": "quit",
    "もどる": "back",
    "前に戻る": "back",
    "使い方": "help",
    "help": "help",
    "担当者": "handoff",
    "担当者と話す": "handoff",
    "問い合わせ": "handoff",
    "予約確認": "bookings",
    "予約の確認・キャンセル": "bookings",
    "予約を確認": "bookings",
    "予約のキャンセル": "cancel",
    "キャンセルしたい": "cancel",
    "日時変更": "reschedule",
    "日時の変更": "reschedule",
    "日時を変更したい": "reschedule",
    "予約の変更": "reschedule",
    "予約を変更する": "reschedule",
    "予約を変更したい": "reschedule",
    "予約変更": "reschedule",
    "予約したい": "book",
    "予約": "book",
    "データ削除": "erase",
    "データを消す": "erase",
    "個人情報を削除": "erase",
}

ITEM_LABELS = {
    "name": "お名前",
    "number": "求職番号",
    "email": "メールアドレス",
    "phone": "電話番号",
    "topic": "相談内容",
    "interpreter": "通訳・介助者",
    "category": "対象区分",
    "slot": "日時",
    "office": "窓口",
    "method": "方法",
    "ref": "予約番号",
}

# -- after booking: no-shows, data deletion, reminders, terms changes ---------------------------------

NO_SHOW_LIMIT = (
    "申し訳ありません。{office}では、ご連絡のないまま相談をお休みされたことが{count}回あったため、"
    "チャットでのご予約をお受けできません。"
)
NO_SHOW_CALL = "ご予約は、お電話で{office}へお申し込みください。"

ERASE_CONFIRM = (
    "ご登録のデータを削除しますか？\n"
    "削除するもの：ご予約のお名前・求職番号・メールアドレス・電話番号と、このトークでの入力内容"
)
ERASE_CANCELS = "次のご予約はキャンセルされます。\n{bookings}"
ERASE_NO_BOOKINGS = "キャンセルされるご予約はありません。"
ERASE_YES = "削除する"
ERASE_NO = "削除しない"
ERASED = "データを削除しました。"
ERASED_CANCELLED = "次のご予約もキャンセルしました。\n{bookings}"
ERASE_KEPT = "データの削除を取りやめました。"

REMINDER_OFFER = "相談日の前日に、このトークでお知らせをお送りできます。"
REMINDER_OPT_IN = "前日にお知らせを受け取る"
REMINDER_SET = "相談日の前日{time}ごろに、このトークでお知らせします。"
REMINDER_STALE = "このご予約のお知らせは設定できません（キャンセル済みか、日時が過ぎています）。"
REMINDER = "明日はオンライン職業相談の日です。\n{booking}\n方法：{tool}（{length}）"
REMINDER_CHECKLIST = "【ご準備】\n{items}"
REMINDER_ACTIONS = "ご予約の確認・キャンセルは、下のボタンからどうぞ。"

RECONSENT = "{office}の利用規約が改定されました（{version}）。\nご予約：{booking}"
RECONSENT_REPLY = "相談を受けるには、新しい利用規約への同意が必要です。同意いただくまで、ご予約は確定待ちとなります。"
RECONSENT_OTHER = "内容をご確認のうえ、同意いただける場合は下のボタンを押してください。"
# The office changes its terms without consent and tells users (terms.change: notify, e.g. Izumo art. 13):
# the change, the new text (the link) and when it takes effect.
RECONSENT_NOTIFY = "改定後の利用規約は{date}から適用されます。ご予約はそのままです。"
RECONSENT_IMPLIED = "改定後にご利用いただくと、新しい利用規約に同意したものとみなされます。ご予約はそのままです。"
RECONSENT_CONSENT = "新しい規約に同意する"
RECONSENT_READ = "全文を読む"
RECONSENT_THANKS = "新しい利用規約への同意を記録しました。ありがとうございます。"
RECONSENT_ALREADY = "新しい利用規約には、すでに同意いただいています。"
RECONSENT_STALE = "このボタンのお手続きは必要なくなりました（ご予約が変わったか、規約がさらに改定されました）。"
# Pushed to the user when staff act on a booking in the staff console ({office} is the short name).
STAFF_CANCELLED = (
    "【{office}】{when} のオンライン職業相談のご予約（予約番号 {ref}）は、担当者によりキャンセルされました。"
    "ご不明な点は{office}へお問い合わせください。"
)
STAFF_MEETING = "【{office}】オンライン職業相談の接続情報をお送りします。\n日時: {when}\nツール: {tool}"
STAFF_MEETING_ID = "ミーティングID: {value}"
STAFF_MEETING_PASSCODE = "パスコード: {value}"
STAFF_MEETING_URL = "参加URL: {value}"
STAFF_MEETING_HINT = "開始時刻の数分前に、静かで周りに人のいない場所から接続してお待ちください。"
STAFF_PHONE = "電話: {phone}"  # after STAFF_CANCELLED and STAFF_FOLLOW_UP where the office publishes a number
STAFF_FOLLOW_UP = (
    "【{office}】次回のオンライン職業相談のご予約を承りました。\n日時: {when}\n予約番号: {ref}\n"
    "接続方法は、改めてご案内します。キャンセルやご不明な点は{office}へお問い合わせください。"
)

# -- requests the office confirms: what staff's confirm / decline / proposal tells the user -----------------
# ({office} is the short name, {when} the date and time, {ref} the booking number)
CONFIRMED_PUSH = "【{office}】予約が確定しました。\n日時: {when}\n方法: {tool}（{length}）\n予約番号: {ref}"
CONFIRMED_CHECKLIST = "【ご準備】\n{items}"
CONFIRMED_ACTIONS = "ご予約の確認・キャンセルは、下のボタンからどうぞ。"
DECLINED_PUSH = (
    "【{office}】{when} のオンライン職業相談のお申込み（予約番号 {ref}）は、申し訳ありませんが、お受けできませんでした。\n"
    "理由: {reason}"
)
DECLINED_INSTEAD = "【ほかの方法】\n{items}"
DECLINED_PHONE = "お電話でのご相談・ご予約: {phone}"
DECLINED_EMAIL = "メールでのお申込み: {email}"
DECLINED_COUNTER = "{office}の窓口へお越しいただいてのご相談"
DECLINED_OTHER = "別の日時や、ほかのハローワークへのお申込み（下の「予約する」から）"
DECLINED_ACTIONS = "あらためてお申し込みいただく場合は、下のボタンからどうぞ。"
PROPOSAL_PUSH = (
    "【{office}】お申込み（{old}、予約番号 {ref}）について、ハローワークから別の日時をご提案します。\n"
    "ご提案の日時: {when}\n"
    "{deadline}までにお返事がない場合、このご提案は取り消されます。"
)
PROPOSAL_ASK = "この日時でよろしければ「この日時でお願いする」を、ご都合が悪い場合は「都合が悪い」を押してください。"
PROPOSAL_ACCEPT = "この日時でお願いする"
PROPOSAL_DECLINE = "都合が悪い"
PROPOSAL_ACCEPTED = "ありがとうございます。次の日時で予約が確定しました。\n{booking}"
PROPOSAL_DECLINED = "ご都合が悪いことを担当者にお伝えしました。お申込み（{booking}）について、ハローワークからあらためてご連絡します。"
PROPOSAL_STALE = "このご提案へのお返事は受け付けられません（すでにお返事をいただいたか、期限を過ぎました）。"
PROPOSAL_LAPSED = (
    "【{office}】ご提案した日時（{when}）は、お返事の期限を過ぎたため取り消しました。"
    "お申込み（予約番号 {ref}）について、ハローワークからあらためてご連絡します。"
)

# -- gathered from the other modules (issue 14): input checks, labels and formats, the terms page --------------

# What the input checks say (bot/dialog/validate.py); several are joined into one message.
INPUT_TOO_LONG = "入力が長すぎます。"
INPUT_SYMBOLS_ONLY = "絵文字や記号だけでは受け付けられません。"
NUMBER_ASK = "求職番号を「12345-12345678」のように、5けた・ハイフン・8けたの数字で入力してください。"
NUMBER_WHERE = "ハローワーク受付票（ハローワークカード）に書いてあります。"
NAME_ASK = "お名前を漢字・かな・ローマ字で入力してください。"
NAME_BAD_CHARS = "数字や記号は使えません。"
NAME_TOO_LONG = "お名前は{max}文字以内で入力してください。"
EMAIL_ASK = "メールアドレスを「example@mail.jp」のように入力してください。"
EMAIL_WRONG = "メールアドレスの形が正しくないようです。「example@mail.jp」のように入力してください。"
PHONE_ASK = "電話番号を「090-1234-5678」のように、0から始まる番号で入力してください。"
PHONE_WRONG = "電話番号が正しくないようです。「090-1234-5678」のように、0から始まる日本の番号を入力してください。"
FREE_TEXT_ASK = "内容を文字で入力してください。"
FREE_TEXT_TOO_LONG = "{max}文字以内で入力してください。"
FREE_TEXT_TOO_LONG_NOW = "{max}文字以内で入力してください（いまは{count}文字です）。"

# Dates and times as the user reads them, always Japan time. English dates and times come from Babel
# (CLDR: "Mon, Dec 7", "10:30 AM"); these patterns are the Japanese ones and the plain-Japanese ones
# (12がつ7にち(げつようび)). WEEKDAY_NAMES fill {weekday} (keys: mon … sun).
DAY_FORMAT = "{month}月{day}日({weekday})"
DATE_FORMAT = "{year}年{month}月{day}日"
WEEKDAY_NAMES = {"mon": "月", "tue": "火", "wed": "水", "thu": "木", "fri": "金", "sat": "土", "sun": "日"}
TIME_RANGE = "{start}〜{end}"  # a slot's button: "10:00〜10:30"
DAY_TIME = "{day} {time}"  # "12月1日(火) 10:00〜10:30"
TODAY = "本日"  # in WHEN_DAY: "本日 8:30以降に"
SESSION_LENGTH = "1回{minutes}分"
# Why a day cannot be booked (DAY_CLOSED's {reason}); a holiday's {name} is the holiday's own name in the
# language where one exists (English), else its Japanese name.
CLOSURE_REASONS = {"saturday": "土曜日", "sunday": "日曜日", "year_end": "年末年始", "holiday": "{name}"}

# The booking list and its buttons; a booking as one line.
BOOKING_LABEL = "{office} {when}（予約番号 {ref}・{state}）"
CANCEL_LABEL = "キャンセル"  # the button is "キャンセル 11/25 10:00": at most 8 characters
CANCEL_PROMPT = "キャンセルする場合は、下のボタンを押してください。"

# The cards (confirmation, booked) and how a card reads as text (notifications, a card that had to
# become text, the terminal chat).
METHOD = "{tool}（{length}）"
TITLE_VERSION = "{title}（{version}）"
TERMS_FULL_TEXT = "全文: {url}"
READ_TERMS = "全文を読む"
NEXT_STEPS = "この後の流れ"
CHECKLIST = "ご準備"
SECTION = "【{title}】"
BULLET = "・"  # before each item of a list (a card's rules and next steps, the bookings, other options)

PHONE_NOTE = "{phone}（{note}）"  # a phone number with the office's note on it (Izumo's extension, 41#)
# The office's phone number as a button ({phone} with its extension note, e.g. 0853-21-8609（41#）).
CALL_OFFICE = "{office}に電話する（{phone}）"
CALL_NUMBER = "{phone}に電話"  # when CALL_OFFICE is longer than a button label may be
CALL = "電話をかける"

# The rich menu's bar (at most 14 characters); its areas are the COMMANDS book, bookings, help, language.
RICHMENU_BAR = "メニュー"
RICHMENU_BOOKINGS = "予約の確認・キャンセル"

# -- languages (issue 14): 「English」「やさしい にほんご」「日本語」 work in every language and state ----------------

LANGUAGE_ASK = "ご案内に使う言語を選んでください。"
LANGUAGE_SET = "これからは日本語でご案内します。"  # said in the language just chosen
LANGUAGE_HELP = "言語を変えるときは、下のボタンを押すか、「English」「やさしい にほんご」「日本語」と入力してください。"
# After a profile text that has no translation in the user's language (shown in that language).
PROFILE_NOT_TRANSLATED = "（この部分は日本語のみです）"
# Under a translated terms summary and on the terms page in another language: the Japanese text counts.
TERMS_OFFICIAL = "正式な利用規約は、日本語の原文です。この要約はご参考のためのものです。"
TERMS_PAGE_SOURCE = "出典: {source}"
TERMS_PAGE_TITLE = "利用規約（全文）"
TERMS_PAGE_NOTE = "以下は、正式な利用規約の全文（日本語の原文）です。"  # the terms page in another language


# -- the catalogue: this module answers in the language of the turn ------------------------------------------

NOT_TRANSLATED = ("COMMAND_ALIASES",)  # Japanese phrases; other languages: bot/locale/<lang>/aliases.yaml
# The keys said as a button's label (LINE: at most 20 characters, `LABEL_MAX`); CANCEL_LABEL and
# CHANGE_DATE_LABEL share one with a date ("キャンセル 11/25 10:00"): at most `SHORT_LABEL_MAX`.
LABEL_MAX, SHORT_LABEL_MAX, BAR_MAX = 20, 8, 14
_LABELS = (
    "COMMANDS.*", "ITEM_LABELS.*", "INTERPRETER_CHOICES.*", "MORE_SLOTS", "EARLIER_SLOTS", "OTHER_TIMES", "CONSENT",
    "DECLINE", "BOOK", "CHANGE", "QUIT_LABEL", "CANCEL_YES", "CANCEL_NO", "MOVE_YES", "MOVE_OTHER", "MOVE_NO",
    "ERASE_YES", "ERASE_NO", "REMINDER_OPT_IN", "RECONSENT_CONSENT", "RECONSENT_READ", "READ_TERMS",
    "PROPOSAL_ACCEPT", "PROPOSAL_DECLINE", "CALL", "RICHMENU_BOOKINGS",
)
_SHORT_LABELS = ("CANCEL_LABEL", "CHANGE_DATE_LABEL")
_BARS = ("RICHMENU_BAR",)  # the rich menu's chat bar text
_META = ("NOT_TRANSLATED", "LABEL_MAX", "SHORT_LABEL_MAX", "BAR_MAX")
_JAPANESE: dict[str, Any] = {
    name: value for name, value in globals().items() if name[:1].isupper() and name.isupper() and name not in _META
}
_LOCALIZED: dict[str, dict[str, Any]] = {}  # language -> constant name -> its value in that language


def japanese(name: str) -> Any:
    """The Japanese value of a constant, whatever the language of the turn (staff-facing uses)."""
    return _JAPANESE[name]


def keys() -> dict[str, str]:
    """Every catalogue key and its Japanese text (`NAME`, `NAME.key`)."""
    result: dict[str, str] = {}
    for name, value in _JAPANESE.items():
        if name not in NOT_TRANSLATED:
            result.update(i18n.flatten(name, value))
    return result


def label_limits() -> dict[str, int]:
    """key -> the longest it may be, for every key said as a button's label."""
    limits = {}
    for key in keys():
        name = key.split(".")[0]
        if key in _LABELS or f"{name}.*" in _LABELS:
            limits[key] = LABEL_MAX
        elif key in _SHORT_LABELS:
            limits[key] = SHORT_LABEL_MAX
        elif key in _BARS:
            limits[key] = BAR_MAX
    return limits


def notes() -> dict[str, str]:
    """What a translator must know of a key (the template's `#.` comments): its length limit."""
    return {key: f"Button label: at most {limit} characters." for key, limit in label_limits().items()}


def _in(lang: str, name: str, value: Any) -> Any:
    if name in NOT_TRANSLATED:
        return value
    if isinstance(value, str):
        return i18n.text(lang, name)
    if isinstance(value, dict):
        return {key: i18n.text(lang, f"{name}.{key}") for key in value}
    if isinstance(value, tuple) and f"{name}.{value[0][0]}" in _KEYS:
        return tuple((key, i18n.text(lang, f"{name}.{key}")) for key, _ in value)
    return value


def _localized(lang: str) -> dict[str, Any]:
    table = _LOCALIZED.get(lang)
    if table is None:
        table = _LOCALIZED[lang] = {name: _in(lang, name, value) for name, value in _JAPANESE.items()}
    return table


class _Texts(types.ModuleType):
    """This module, whose constants answer in the language of the turn."""

    def __getattribute__(self, name: str) -> Any:
        if name[:1].isupper():
            lang = i18n.current()
            if lang != i18n.SOURCE and name in _JAPANESE:
                return _localized(lang)[name]
        return super().__getattribute__(name)


_KEYS = keys()
i18n.on_reload(_LOCALIZED.clear)
i18n.register_source(_KEYS)
sys.modules[__name__].__class__ = _Texts
